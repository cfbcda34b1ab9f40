"""missing_packages: which of a task's packages the node does not have, by the package
facts read at the start of this run (role common). A role's apt task runs only when that
list is not empty: on a node that has them all, apt's cache is never opened (about a second
a task), and without the facts every package counts as missing, so apt runs as before."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def missing_packages(names: str | Iterable[str], facts: Mapping[str, Any]) -> list[str]:
    wanted = [names] if isinstance(names, str) else list(names)
    installed = facts.get("packages")
    if not isinstance(installed, Mapping):
        return wanted
    return [name for name in wanted if name not in installed]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"missing_packages": missing_packages}
