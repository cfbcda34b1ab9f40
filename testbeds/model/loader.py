"""Load and validate definitions and site profiles, turning every failure into one clear line."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from testbeds import paths
from testbeds.errors import DefinitionError, field_path
from testbeds.model.composition import compose
from testbeds.model.schema import SiteProfile, TestbedDefinition
from testbeds.playbook import SITE_PLAYBOOK, played_roles

Model = TypeVar("Model", bound=BaseModel)


# Definitions and site profiles are small; anything larger is not one.
MAX_YAML_BYTES = 1024 * 1024
# Anchors and aliases are allowed for reuse, but a few aliases can expand to gigabytes
# once the data is walked (a "billion laughs"): past this many the file is refused.
MAX_YAML_ALIASES = 64


class _StrictLoader(yaml.SafeLoader):
    """safe_load, plus: duplicate keys are an error and aliases are counted."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.constructor.ConstructorError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases", event.start_mark
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise DefinitionError(path, "", f"larger than {MAX_YAML_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DefinitionError(path, "", "file not found") from None
    except IsADirectoryError:
        raise DefinitionError(path, "", "is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise DefinitionError(path, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DefinitionError(path, "", f"cannot be read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "syntax"
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(path, where, f"YAML syntax error: {problem}") from None


def parse(model: type[Model], path: Path, data: Any) -> Model:
    if not isinstance(data, dict):
        raise DefinitionError(path, "", "expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(tuple(first["loc"]), data)
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        if len(exc.errors()) > 1:
            message += f" (and {len(exc.errors()) - 1} more problem(s))"
        raise DefinitionError(path, field, message) from None


def definition_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    return paths.DEFINITIONS_DIR / f"{name_or_path}.yaml"


def available_definitions() -> list[str]:
    return sorted(p.stem for p in paths.DEFINITIONS_DIR.glob("*.yaml"))


def available_roles() -> set[str]:
    base = paths.roles_dir()
    return {p.name for p in base.iterdir() if (p / "tasks" / "main.yml").is_file()}


@cache
def role_variables(role: str) -> frozenset[str]:
    """The variable names a role mentions in its defaults and argument specs: those it reads,
    its own and (in default expressions) the definition-level ones it derives them from."""
    base = paths.roles_dir()
    words: set[str] = set()
    for name in ("defaults/main.yml", "meta/argument_specs.yml"):
        file = base / role / name
        if file.is_file():
            words |= set(re.findall(r"[a-z_][a-z0-9_]*", file.read_text(encoding="utf-8")))
    return frozenset(words)


def load_definition(name_or_path: str, included: bool = False) -> TestbedDefinition:
    """A definition, validated; one that includes others comes back composed (flat)."""
    path = definition_path(name_or_path)
    # A name, not a file: one of the shipped definitions (a name too long for the file
    # system is no file to look for).
    if path.parent == paths.DEFINITIONS_DIR and path.stem not in available_definitions():
        known = ", ".join(available_definitions())
        raise DefinitionError(path, "", f"no testbed named {name_or_path!r} (known: {known})")
    data = read_yaml(path)
    if isinstance(data, dict) and "include" in data:
        if included:
            raise DefinitionError(path, "include", "an included testbed may not include others")
        # Included testbeds are shipped ones, checked against their own files first.
        data = compose(
            path,
            data,
            lambda name: load_definition(name, included=True),
            lambda roles, key: any(key in role_variables(role) for role in roles),
        )
    definition = parse(TestbedDefinition, path, data)
    roles = available_roles()
    played = played_roles()
    for group in definition.node_groups:
        field = f"node_groups[{group.name}].roles"
        for role in group.roles:
            if role not in roles:
                raise DefinitionError(
                    path, field, f"unknown role {role!r} (roles/ has: {', '.join(sorted(roles))})"
                )
            if role not in played:
                raise DefinitionError(
                    path,
                    field,
                    f"role {role!r} has no play in {SITE_PLAYBOOK.name}, so it would never run "
                    "(roles with a play: " + ", ".join(played) + ")",
                )
    for suite in definition.checks:
        if not (paths.CHECKS_DIR / suite).is_dir():
            raise DefinitionError(path, "checks", f"unknown check suite {suite!r}")
    return definition


def site_dir(site: str) -> Path:
    return paths.inventories_dir() / site


def missing_site_section(site: str, section: str, needs: str = "it") -> DefinitionError:
    """The error for a target whose section of the site profile is absent."""
    return DefinitionError(
        site_dir(site) / "site.yml", section, f"missing: the {section} target needs {needs}"
    )


def load_site(site: str) -> SiteProfile:
    directory = site_dir(site)
    path = directory / "site.yml"
    if not directory.is_dir():
        known = sorted(
            p.name for p in paths.inventories_dir().iterdir() if (p / "site.yml").is_file()
        )
        raise DefinitionError(directory, "", f"no site named {site!r} (known: {', '.join(known)})")
    profile = parse(SiteProfile, path, read_yaml(path))
    if profile.name != site:
        raise DefinitionError(path, "name", f"is {profile.name!r} but the folder is {site!r}")
    return profile
