"""Where each Ansible value of a testbed comes from, in the order Ansible layers them:
role defaults, then the testbed definition's vars, then inventories/common/group_vars/all,
then the site's group_vars/all (the last one that sets a value wins)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbeds import paths
from testbeds.model.loader import read_yaml, site_dir
from testbeds.model.plan import Plan


@dataclass(frozen=True)
class Value:
    name: str
    value: Any
    source: str  # "role <r>", "testbed <t>", "common", "site <s>"
    file: str
    overrides: tuple[str, ...] = ()  # sources it replaced, earliest first


def _group_vars(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((folder / "group_vars" / "all").glob("*.yml")):
        data = read_yaml(path) or {}
        if isinstance(data, dict):
            found.append((path, data))
    return found


def with_dependencies(roles: set[str]) -> set[str]:
    """The roles and every role their meta/main.yml pulls in, transitively."""
    found: set[str] = set()
    pending = list(roles)
    while pending:
        role = pending.pop()
        if role in found:
            continue
        found.add(role)
        meta = paths.roles_dir() / role / "meta" / "main.yml"
        data = (read_yaml(meta) or {}) if meta.is_file() else {}
        for dep in data.get("dependencies") or []:
            pending.append(dep["role"] if isinstance(dep, dict) else str(dep))
    return found


def resolved_values(plan: Plan) -> list[Value]:
    layers: list[tuple[str, Path, dict[str, Any]]] = []
    roles = sorted(with_dependencies(set(plan.roles)))
    for role in roles:
        defaults = paths.roles_dir() / role / "defaults" / "main.yml"
        if defaults.is_file():
            layers.append((f"role {role}", defaults, read_yaml(defaults) or {}))
    layers.append((f"testbed {plan.name}", Path(plan.source or plan.name), plan.definition.vars))
    layers += [("common", p, d) for p, d in _group_vars(paths.inventories_dir() / "common")]
    layers += [(f"site {plan.site.name}", p, d) for p, d in _group_vars(site_dir(plan.site.name))]
    resolved: dict[str, Value] = {}
    for source, path, data in layers:
        for name, value in data.items():
            before = resolved.get(name)
            history = (*before.overrides, before.source) if before else ()
            resolved[name] = Value(name, value, source, str(path), history)
    return [resolved[name] for name in sorted(resolved)]
