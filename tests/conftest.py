"""Shared fixtures: an isolated state directory and a scratch project home for bad inputs;
the live tests kept in one pytest-xdist group."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Skips fail in CI unless the test needs(...) something on the allow-list.
pytest_plugins = ["tests.ci_policy", "pytester"]

REPO = Path(__file__).resolve().parents[1]
# Tests that bring real testbeds or a cloud's control plane up: one after another, on one
# pytest-xdist worker (the README's test command runs two), while the other runs the rest.
# Two of them at once would fight for the two cores their timed checks are measured on.
LIVE_FOLDERS = ("e2e", "openstack", "cloud")
LIVE_GROUP = "live"


# First: pytest-xdist's worker reads the groups in its own hook of the same name.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = REPO / "tests"
    for item in items:
        # A run may collect outside tests/ too (`pytest tests testbeds/checks/...`).
        if item.path.is_relative_to(tests) and item.path.relative_to(tests).parts[0] in (
            LIVE_FOLDERS
        ):
            item.add_marker(pytest.mark.xdist_group(LIVE_GROUP))


@pytest.fixture(scope="session", autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every test's testbed state (and the CLIs they start) out of the user's own."""
    state = tmp_path_factory.getbasetemp() / "state"
    before = os.environ.get("TESTBED_STATE_DIR")
    os.environ["TESTBED_STATE_DIR"] = str(state)
    yield state
    if before is None:
        del os.environ["TESTBED_STATE_DIR"]
    else:
        os.environ["TESTBED_STATE_DIR"] = before


@pytest.fixture
def scratch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of roles/ and inventories/ that a test may break without touching the checkout."""
    shutil.copytree(REPO / "roles", tmp_path / "roles")
    shutil.copytree(REPO / "inventories", tmp_path / "inventories")
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path))
    return tmp_path
