"""Order within each end-to-end class: a testbed's lifecycle ends with down."""

from __future__ import annotations

import pytest

LAST = "test_down_leaves_nothing"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move each class's (or module's) `test_down_leaves_nothing` after its other tests,
    keeping everything else in place, so a testbed comes down once its faults have run."""
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.parent.nodeid if item.parent else "", index)
    position = {
        id(item): (first[item.parent.nodeid if item.parent else ""], item.name == LAST, index)
        for index, item in enumerate(items)
    }
    items.sort(key=lambda item: position[id(item)])
