"""Compose testbeds: a definition that includes others becomes one flat definition.

The included testbeds' node groups join the composing definition's own, on one network
with one CA and one inventory. Node names are kept as they are, because the testbeds'
variables name hosts (an endpoint's audience is https://<node>:8443): a name used twice is
refused rather than renamed. The composition has one identity layer: the directory and its
token issuer stay on one node group (the composing definition's own, or else the first
included testbed's), and the accounts, projects and clients of every testbed are merged
there. A variable two testbeds set differently, which the identity host does not read
(each testbed's own databases, say), stays with each testbed's groups. Every refusal names
the composing file and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from testbeds.errors import DefinitionError, field_path
from testbeds.model.schema import Include, Link, NodeGroup, TestbedDefinition
from testbeds.role_facts import roles_with


def identity_layer_roles() -> frozenset[str]:
    """Roles that make a node group the identity host (their meta/testbed.yml says
    `identity_layer: true`): the issuer reads the directory on its own node, so the two
    move together."""
    return roles_with("identity_layer")


# Merged variables whose records each claim a numeric id that must stay unique.
UNIQUE_IDS = {"users_accounts": "uid", "users_projects": "gid"}

T = TypeVar("T")
_INCLUDES: TypeAdapter[tuple[Include, ...]] = TypeAdapter(tuple[Include, ...])
_LINKS: TypeAdapter[tuple[Link, ...]] = TypeAdapter(tuple[Link, ...])


def _named_records(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value)


# Whether any of these roles reads this variable (named in its defaults or argument specs).
ReadBy = Callable[[set[str], str], bool]


class _Composer:
    def __init__(self, path: Path, data: dict[str, Any], read_by: ReadBy) -> None:
        self.path = path
        self.data = data
        self.read_by = read_by

    def fail(self, field: str, message: str) -> DefinitionError:
        return DefinitionError(self.path, field, message)

    def validated(self, adapter: TypeAdapter[T], key: str, value: Any) -> T:
        """A field the composition reads before the schema sees the flat definition."""
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = field_path(tuple(first["loc"]), value)
            raise self.fail(f"{key}{where}", first["msg"]) from None

    def includes(self) -> tuple[Include, ...]:
        includes = self.validated(_INCLUDES, "include", self.data.get("include"))
        if not includes:
            raise self.fail("include", "lists no testbed")
        names = [i.testbed for i in includes]
        for name in names:
            if names.count(name) > 1:
                raise self.fail(f"include[{name}]", "testbed included twice")
            if name == self.data.get("name"):
                raise self.fail(f"include[{name}]", "a testbed cannot include itself")
        for key in ("node_groups", "checks", "shared_filesystems"):
            if not isinstance(self.data.get(key, []), list):
                raise self.fail(key, "expected a list")
        return includes

    def selected_groups(self, included: Include, definition: TestbedDefinition) -> list[NodeGroup]:
        by_name = {g.name: g for g in definition.node_groups}
        for name in included.node_groups:
            if name not in by_name:
                raise self.fail(
                    f"include[{included.testbed}].node_groups",
                    f"{included.testbed} has no node group {name!r} (it has: {', '.join(by_name)})",
                )
        return [by_name[n] for n in included.node_groups or by_name]

    def merge_value(self, key: str, field: str, before: Any, value: Any, owner: str) -> Any:
        """One variable set by two included testbeds: equal values, or records by name."""
        if before == value:
            return before
        if _named_records(before) and _named_records(value):
            merged = {r["name"]: r for r in before}
            for record in value:
                kept = merged.setdefault(record["name"], record)
                if kept != record:
                    raise self.fail(
                        f"{field}[{record['name']}]",
                        f"differs from {owner}'s {key}[{record['name']}]; "
                        f"set {key} in this file's vars to choose",
                    )
            return list(merged.values())
        raise self.fail(
            field, f"differs from {owner}'s {key}; set {key} in this file's vars to choose"
        )

    def kept_apart(
        self, definitions: Sequence[TestbedDefinition], identity_roles: set[str]
    ) -> set[str]:
        """Variables two testbeds set differently that the identity host does not read:
        each testbed keeps its own value on its own groups (the records the identity host
        reads, accounts and clients, are merged there instead)."""
        own = self.data.get("vars") or {}
        first: dict[str, Any] = {}
        apart = set()
        for definition in definitions:
            for key, value in definition.vars.items():
                if key in own or self.read_by(identity_roles, key):
                    continue
                if first.setdefault(key, value) != value:
                    apart.add(key)
        return apart

    def merged_vars(
        self,
        definitions: Sequence[TestbedDefinition],
        roles: Sequence[set[str]],
        apart: set[str],
    ) -> dict[str, Any]:
        """Every testbed's vars in one set (they apply to every node), but those kept apart:
        a variable two testbeds set differently, or one sets and another's roles read at
        their default, is refused unless this file's vars choose its value."""
        own = self.data.get("vars", {})
        if not isinstance(own, dict):
            raise self.fail("vars", "expected a mapping of variable names to values")
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for definition in definitions:
            for key, value in definition.vars.items():
                if key in own:
                    continue
                if key in merged and key not in apart:
                    field = f"include[{definition.name}].vars.{key}"
                    merged[key] = self.merge_value(key, field, merged[key], value, owner[key])
                elif key not in merged:
                    merged[key], owner[key] = value, definition.name
        for key in merged:
            for definition, used in zip(definitions, roles, strict=True):
                if key not in definition.vars and self.read_by(used, key):
                    raise self.fail(
                        f"include[{owner[key]}].vars.{key}",
                        f"{definition.name}'s roles read {key} at their default, which this "
                        f"would change for them; set {key} in this file's vars to choose",
                    )
        for key in apart:
            del merged[key]
        merged.update(own)
        for key, id_field in UNIQUE_IDS.items():
            holders: dict[Any, str] = {}
            for record in merged.get(key) or []:
                if not isinstance(record, dict) or id_field not in record:
                    continue
                other = holders.setdefault(record[id_field], str(record.get("name")))
                if other != record.get("name"):
                    raise self.fail(
                        f"vars.{key}[{record.get('name')}].{id_field}",
                        f"{id_field} {record[id_field]} is also {other}'s",
                    )
        return merged

    def links(self, group_origin: dict[str, str]) -> None:
        """Each link joins existing node groups of two different testbeds: within one
        testbed the groups reach each other already, so such a link is a mistake."""
        links = self.validated(_LINKS, "links", self.data.get("links") or ())
        known = ", ".join(group_origin)
        for index, link in enumerate(links):
            for field, group in [("to", link.to)] + [
                (f"from[{i}]", source) for i, source in enumerate(link.sources)
            ]:
                if group not in group_origin:
                    raise self.fail(
                        f"links[{index}].{field}", f"no node group {group!r} (there are: {known})"
                    )
            for i, source in enumerate(link.sources):
                if group_origin[source] == group_origin[link.to]:
                    raise self.fail(
                        f"links[{index}].from[{i}]",
                        f"{source} and {link.to} are both {group_origin[source]}'s groups, "
                        "which reach each other already",
                    )

    def identity_holder(
        self, own_groups: list[Any], chosen: list[tuple[str, list[NodeGroup]]]
    ) -> str:
        """The testbed whose directory stays: this file's own, else the first included."""
        for group in own_groups:
            if isinstance(group, dict) and identity_layer_roles() & set(group.get("roles") or ()):
                return str(self.data.get("name"))
        for testbed, groups in chosen:
            if any(identity_layer_roles() & set(g.roles) for g in groups):
                return testbed
        return ""


def compose(
    path: Path,
    data: dict[str, Any],
    load: Callable[[str], TestbedDefinition],
    read_by: ReadBy,
) -> dict[str, Any]:
    """The flat definition (as data, for the schema to check) of a composing definition."""
    composer = _Composer(path, data, read_by)
    includes = composer.includes()
    definitions = []
    for included in includes:
        try:
            definitions.append(load(included.testbed))
        except DefinitionError as exc:
            if exc.path.is_file():  # the included file's own fault, named there
                raise
            raise composer.fail(f"include[{included.testbed}].testbed", exc.message) from None
    chosen = [
        (i.testbed, composer.selected_groups(i, d))
        for i, d in zip(includes, definitions, strict=True)
    ]
    own_groups = list(data.get("node_groups") or [])
    holder = composer.identity_holder(own_groups, chosen)
    # Every role on the identity host's nodes: what it reads is merged for all testbeds.
    candidates = [set(g.roles) for t, selected in chosen if t == holder for g in selected] + [
        set(g.get("roles") or ())
        for g in own_groups
        if isinstance(g, dict) and holder == data.get("name")
    ]
    identity_roles = set().union(*(r for r in candidates if r & identity_layer_roles()))
    apart = composer.kept_apart(definitions, identity_roles)
    vars_of = {d.name: d.vars for d in definitions}

    origin: dict[str, str] = {}
    group_origin: dict[str, str] = {}
    for group in own_groups:
        if isinstance(group, dict) and isinstance(group.get("name"), str):
            origin[group["name"]] = "this file"
            group_origin[group["name"]] = str(data.get("name"))
    groups: list[dict[str, Any]] = []
    for testbed, selected in chosen:
        for group in selected:
            for node in dict.fromkeys((group.name, *group.node_names())):
                if node in origin:
                    raise composer.fail(
                        f"include[{testbed}].node_groups",
                        f"{testbed}'s node {node!r} clashes with {origin[node]}'s",
                    )
                origin[node] = testbed
            group_origin[group.name] = testbed
            roles = group.roles
            if testbed != holder:
                roles = tuple(r for r in roles if r not in identity_layer_roles())
            own_values = {
                k: v
                for k, v in vars_of[testbed].items()
                if k in apart and composer.read_by(set(roles), k)
            }
            update = {"roles": roles, "vars": {**own_values, **group.vars}}
            groups.append(group.model_copy(update=update).model_dump(mode="json"))

    composer.links(group_origin)

    filesystems: dict[str, dict[str, Any]] = {}
    for definition in definitions:
        for fs in definition.shared_filesystems:
            dumped = fs.model_dump(mode="json")
            if filesystems.setdefault(fs.path, dumped) != dumped:
                raise composer.fail(
                    f"include[{definition.name}].shared_filesystems",
                    f"{fs.path} is shared differently by another included testbed",
                )

    checks = [c for d in definitions for c in d.checks] + list(data.get("checks") or [])
    flat = {key: value for key, value in data.items() if key not in ("include", "vars")}
    flat.update(
        node_groups=groups + own_groups,
        shared_filesystems=list(filesystems.values()) + list(data.get("shared_filesystems") or []),
        checks=list(dict.fromkeys(checks)),
        entry=data.get("entry", definitions[0].entry),
        vars=composer.merged_vars(
            definitions, [{r for g in selected for r in g.roles} for _, selected in chosen], apart
        ),
        include=[
            {"testbed": testbed, "node_groups": [g.name for g in selected]}
            for testbed, selected in chosen
        ],
    )
    return flat
