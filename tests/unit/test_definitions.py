"""Definitions and site profiles: the shipped ones load, broken ones fail naming file and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from testbeds.errors import DefinitionError
from testbeds.model.loader import (
    available_definitions,
    available_roles,
    load_definition,
    load_site,
)
from testbeds.model.plan import resolve
from testbeds.playbook import played_roles

ROLES = sorted(available_roles())

VALID = {
    "name": "mini",
    "description": "two groups",
    "checks": ["slurm_core"],
    "entry": "login",
    "node_groups": [
        {"name": "login", "roles": ["common", "slurm_login"]},
        {
            "name": "cpu",
            "count": 2,
            "roles": ["common", "slurm_compute"],
            "traits": {"cpus": 2, "memory_mb": 2048},
        },
    ],
}


def write(tmp_path: Path, data: object, name: str = "def.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def broken(**changes: object) -> dict[str, object]:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("name", available_definitions())
def test_shipped_definitions_load(name: str) -> None:
    """Every definition shipped in the package validates and resolves on the local site."""
    plan = resolve(name)
    assert plan.nodes
    assert plan.entry_node().group == plan.definition.entry


def test_valid_definition_expands_node_names(tmp_path: Path) -> None:
    """count > 1 numbers the nodes; count 1 keeps the group name."""
    definition = load_definition(str(write(tmp_path, VALID)))
    assert [g.node_names() for g in definition.node_groups] == [["login"], ["cpu1", "cpu2"]]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"node_groups__1__colour": "red"}, "node_groups[cpu].colour", "unknown key"),
        ({"node_groups__1__count": 0}, "node_groups[cpu].count", "0 nodes needs max"),
        ({"node_groups__1__traits__cpus": "many"}, "node_groups[cpu].traits.cpus", "integer"),
        (
            {"node_groups__1__roles": ["common", "slurmd_typo"]},
            "node_groups[cpu].roles",
            "unknown role 'slurmd_typo'",
        ),
        (
            {"node_groups__1__name": "login"},
            "node_groups",
            "node_groups: node group name used twice: login",
        ),
        ({"entry": "bastion"}, "entry", "entry: 'bastion' is not a node group"),
        (
            {"node_groups__1__roles": ["common", "slurm"]},
            "node_groups[cpu].roles",
            "role 'slurm' has no play in site.yml, so it would never run",
        ),
        ({"checks": ["no_such_suite"]}, "checks", "unknown check suite"),
        ({"name": "Bad Name"}, "name", "should match pattern"),
        (
            {"node_groups__1__traits__fpga_model": "u250"},
            "node_groups[cpu].traits",
            "fpga_model is set but fpgas is 0",
        ),
        (
            {"node_groups__1__traits__scratch": {"size_gb": 0}},
            "node_groups[cpu].traits.scratch.size_gb",
            "greater than or equal to 1",
        ),
        (
            {"node_groups__1__traits__scratch": {"size_gb": 1, "path": "/scratch;rm"}},
            "node_groups[cpu].traits.scratch.path",
            "should match pattern",
        ),
        (
            {
                "node_groups__0__traits": {"scratch": {"size_gb": 1, "path": "/a"}},
                "node_groups__1__traits__scratch": {"size_gb": 1, "path": "/b"},
            },
            "node_groups",
            "node_groups: scratch paths differ between groups: /a, /b",
        ),
    ],
)
def test_broken_definition_names_file_and_field(
    tmp_path: Path, changes: dict[str, object], field: str, message: str
) -> None:
    """Each kind of mistake gives one message naming the file and the field."""
    path = write(tmp_path, broken(**changes))
    with pytest.raises(DefinitionError) as info:
        load_definition(str(path))
    text = str(info.value)
    assert text.startswith(f"{path}: {field}: "), text
    assert message in text


@pytest.mark.parametrize(
    ("role", "problem"),
    [
        ("slurmd_typo", lambda: f"unknown role 'slurmd_typo' (roles/ has: {', '.join(ROLES)})"),
        (
            "slurm",
            lambda: (
                "role 'slurm' has no play in site.yml, so it would never run (roles with a "
                f"play: {', '.join(played_roles())})"
            ),
        ),
    ],
)
def test_an_unknown_or_unplayed_role_lists_what_there_is(
    tmp_path: Path, role: str, problem: Callable[[], str]
) -> None:
    path = write(tmp_path, broken(node_groups__1__roles=["common", role]))
    with pytest.raises(DefinitionError) as refused:
        load_definition(str(path))
    assert str(refused.value) == f"{path}: node_groups[cpu].roles: {problem()}"


def test_an_unknown_testbed_name_lists_the_shipped_ones() -> None:
    from testbeds import paths

    with pytest.raises(DefinitionError) as unknown:
        load_definition("no-such-testbed")
    assert str(unknown.value) == (
        f"{paths.DEFINITIONS_DIR / 'no-such-testbed.yaml'}: no testbed named 'no-such-testbed' "
        f"(known: {', '.join(available_definitions())})"
    )


def test_a_definition_file_may_end_in_yml(tmp_path: Path) -> None:
    assert load_definition(str(write(tmp_path, VALID, "mini.yml"))).name == "mini"


def test_node_name_clash_between_groups(tmp_path: Path) -> None:
    """Group 'cpu' with two nodes makes 'cpu1'; a group called 'cpu1' must be refused."""
    data = broken()
    data["node_groups"].append({"name": "cpu1", "roles": ["common"]})  # type: ignore[attr-defined]
    with pytest.raises(
        DefinitionError,
        match=r"def.yaml: node_groups: node name 'cpu1' of group 'cpu1' clashes with group 'cpu'",
    ):
        load_definition(str(write(tmp_path, data)))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """A syntax error points at the line and column."""
    path = write(tmp_path, "name: x\nnode_groups: [\n  {name: a\n")
    with pytest.raises(DefinitionError, match=r"line \d+, column \d+: YAML syntax error"):
        load_definition(str(path))


def test_unknown_testbed_lists_known_ones() -> None:
    with pytest.raises(DefinitionError, match="no testbed named 'nope' .*hpc-access"):
        load_definition("nope")


def test_unknown_site_lists_known_ones() -> None:
    with pytest.raises(DefinitionError, match="no site named 'atlantis' .*local"):
        load_site("atlantis")


def test_site_name_must_match_folder(scratch_home: Path) -> None:
    site = scratch_home / "inventories" / "local" / "site.yml"
    site.write_text(site.read_text().replace("name: local", "name: elsewhere"))
    with pytest.raises(DefinitionError, match=r"site.yml: name: is 'elsewhere'"):
        load_site("local")


def test_site_unknown_key(scratch_home: Path) -> None:
    site = scratch_home / "inventories" / "local" / "site.yml"
    site.write_text(site.read_text() + "flavours: {}\n")
    with pytest.raises(DefinitionError, match=r"site.yml: flavours: unknown key"):
        load_site("local")
