"""Composition: a definition that includes testbeds becomes one flat testbed with one identity
layer, or is refused naming the composing file and field (exit 2) before anything is made."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from testbeds.cli import main
from testbeds.errors import DefinitionError
from testbeds.inventory import inventory_sources, render_inventory
from testbeds.model.loader import load_definition
from testbeds.model.plan import resolve
from tests.unit.test_inventory import fake_nodes

COMPOSED = "research-infrastructure"
# The shipped composition, as data, to break one field at a time.
SHIPPED = yaml.safe_load(
    (Path(__file__).parents[2] / "testbeds/definitions/research-infrastructure.yaml").read_text()
)


def composed(tmp_path: Path, **changes: object) -> Path:
    data = {**json.loads(json.dumps(SHIPPED)), **changes}
    path = tmp_path / "composed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_composition_takes_in_the_selected_groups() -> None:
    """hpc-access's groups, data-movement's chosen ones, pipelines' and the composition's own
    transfer node and CI gateway, each with the testbed it came from; the included testbeds'
    checks all run."""
    definition = load_definition(COMPOSED)
    origins = {g.name: definition.origin(g.name) for g in definition.node_groups}
    assert origins == {
        "controller": "hpc-access",
        "login": "hpc-access",
        "cpu": "hpc-access",
        "gpu": "hpc-access",
        "elastic": "hpc-access",
        "site": "data-movement",
        "ddm": "data-movement",
        "client": "data-movement",
        "service": "pipelines",
        "worker": "pipelines",
        "gpuworker": "pipelines",
        "hpc": COMPOSED,
        "gateway": COMPOSED,
    }
    assert definition.entry == "login"
    assert definition.checks[:5] == ("base", "slurm_core", "identity", "tokens", "hpc_services")
    assert {"storage_endpoints", "data_management", "pipelines", "composition"} <= set(
        definition.checks
    )
    assert [fs.path for fs in definition.shared_filesystems] == ["/home", "/shared"]


def test_one_identity_layer_holds_every_testbeds_accounts_and_clients() -> None:
    """The directory and the issuer stay on hpc-access's controller alone; data-movement's
    accounts, projects and storage clients join hpc-access's there."""
    definition = load_definition(COMPOSED)
    holders = {
        role: [g.name for g in definition.node_groups if role in g.roles]
        for role in ("directory", "token_issuer")
    }
    assert holders == {"directory": ["controller"], "token_issuer": ["controller"]}
    accounts = {a["name"]: a["uid"] for a in definition.vars["users_accounts"]}
    assert accounts == {"researcher": 2001, "datamanager": 2101, "developer": 2201, "ci": 2202}
    projects = {p["name"]: p["gid"] for p in definition.vars["users_projects"]}
    assert projects == {"physics": 3001, "datalake": 3101, "research": 3201}
    clients = [c["name"] for c in definition.vars["token_issuer_clients"]]
    assert clients == ["hpc-workflows", "jupyterhub", "datalake-tools", "datalake-cli",
                       "rucio-transfers", "pipeline-research"]  # fmt: skip
    # The composition's own choice, over data-movement's (which hpc-access's roles read).
    assert definition.vars["directory_create_homes"] is True


def test_what_the_identity_host_does_not_read_stays_with_each_testbed() -> None:
    """data-movement's and pipelines' databases differ, and the controller runs no
    PostgreSQL: each database server gets its own testbed's list, nothing global."""
    definition = load_definition(COMPOSED)
    assert "postgresql_databases" not in definition.vars
    databases = {
        g.name: [d["name"] for d in g.vars["postgresql_databases"]]
        for g in definition.node_groups
        if "postgresql_databases" in g.vars
    }
    assert databases == {"ddm": ["rucio"], "service": ["mlflow"]}


def test_included_testbeds_are_unchanged_on_their_own() -> None:
    """Composing does not touch the testbeds it includes."""
    alone = load_definition("data-movement")
    assert [g.name for g in alone.node_groups] == ["site", "hpc", "ddm", "client"]
    assert "directory" in next(g for g in alone.node_groups if g.name == "ddm").roles
    assert alone.vars["directory_create_homes"] is False


def test_group_vars_reach_only_that_groups_nodes(tmp_path: Path) -> None:
    """The transfer node's storage directory is a var of its group: Ansible gives it to that
    node and leaves the grid sites at the role default."""
    plan = resolve(COMPOSED, instance="compose-test")
    generated = tmp_path / "hosts.yml"
    generated.write_text(render_inventory(plan, fake_nodes(plan), dict(plan.definition.vars)))
    args = ["ansible-inventory", "--list"]
    for source in inventory_sources("local", generated):
        args += ["-i", source]
    hostvars = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)[
        "_meta"
    ]["hostvars"]
    assert hostvars["hpc"]["xrootd_storage_dir"] == "/shared/datalake"
    assert hostvars["hpc"]["xrootd_directory_mode"] == "0755"
    assert "xrootd_storage_dir" not in hostvars["site1"]
    assert "xrootd_directory_mode" not in hostvars["site1"]
    assert [a["name"] for a in hostvars["site1"]["users_accounts"]] == [
        "researcher",
        "datamanager",
        "developer",
        "ci",
    ]
    # Each database server has its own testbed's databases.
    assert [d["name"] for d in hostvars["ddm"]["postgresql_databases"]] == ["rucio"]
    assert [d["name"] for d in hostvars["service"]["postgresql_databases"]] == ["mlflow"]
    assert "postgresql_databases" not in hostvars["site1"]
    group = next(g for g in plan.as_dict()["node_groups"] if g["name"] == "hpc")
    assert group["vars"] == {
        "xrootd_storage_dir": "/shared/datalake",
        "xrootd_directory_mode": "0755",
    }
    assert plan.as_dict()["include"][1] == {
        "testbed": "data-movement",
        "node_groups": ["site", "ddm", "client"],
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"include": [{"testbed": "nope"}]}, "include[nope].testbed", "no testbed named 'nope'"),
        (
            {"include": [{"testbed": "hpc-access"}, {"testbed": "hpc-access"}]},
            "include[hpc-access]",
            "testbed included twice",
        ),
        (
            {"include": [{"testbed": "data-movement", "node_groups": ["site", "tape"]}]},
            "include[data-movement].node_groups",
            "data-movement has no node group 'tape'",
        ),
        (
            # Both have a node group `hpc`: names are kept, so the clash is refused.
            {"include": [{"testbed": "data-movement"}]},
            "include[data-movement].node_groups",
            "data-movement's node 'hpc' clashes with this file's",
        ),
        (
            # data-movement's own `hpc` group and this file's transfer node.
            {"include": [{"testbed": "hpc-access"}, {"testbed": "data-movement"}]},
            "include[data-movement].node_groups",
            "data-movement's node 'hpc' clashes with this file's",
        ),
        (
            # data-movement's storage scopes would silently reach hpc-access's accounts.
            {"vars": {"directory_create_homes": True}},
            "include[data-movement].vars.users_token_scopes",
            "hpc-access's roles read users_token_scopes at their default",
        ),
        (
            {
                "vars": {
                    **SHIPPED["vars"],
                    "users_accounts": [{"name": "a", "uid": 2500}, {"name": "b", "uid": 2500}],
                }
            },
            "vars.users_accounts[b].uid",
            "uid 2500 is also a's",
        ),
        (
            {"name": "bigger", "include": [{"testbed": COMPOSED}]},
            "include",
            "an included testbed may not include others",
        ),
        ({"include": []}, "include", "lists no testbed"),
        (
            {"name": "hpc-access", "include": [{"testbed": "hpc-access"}]},
            "include[hpc-access]",
            "cannot include itself",
        ),
        (
            {"links": [{"from": ["site"], "to": "storage", "ports": [{"port": 1094}]}]},
            "links[0].to",
            "no node group 'storage'",
        ),
        (
            {
                "links": [
                    *SHIPPED["links"],
                    {"from": ["ddm", "tape"], "to": "hpc", "ports": [{"port": 1}]},
                ]
            },
            f"links[{len(SHIPPED['links'])}].from[1]",
            "no node group 'tape'",
        ),
        (
            # Groups of one testbed reach each other already: a link there is a mistake.
            {"links": [{"from": ["login"], "to": "controller", "ports": [{"port": 6817}]}]},
            "links[0].from[0]",
            "both hpc-access's groups",
        ),
        (
            {"links": [{"from": ["hpc"], "to": "site", "ports": [{"port": 70000}]}]},
            "links[0].ports[0].port",
            "less than or equal to 65535",
        ),
        (
            {"links": [{"from": [], "to": "site", "ports": [{"port": 1}]}]},
            "links[0].from",
            "at least 1",
        ),
        (
            {
                "links": [
                    *SHIPPED["links"],
                    {"from": ["ddm"], "to": "elastic", "ports": [{"port": 1}]},
                ]
            },
            "",
            "node_groups[elastic].max: a link leads to this group; an elastic group serves nobody",
        ),
        ({"checks": "composition"}, "checks", "expected a list"),
        ({"vars": ["a"]}, "vars", "expected a mapping"),
    ],
)
def test_bad_composition_names_file_and_field(
    tmp_path: Path, changes: dict[str, object], field: str, message: str
) -> None:
    path = composed(tmp_path, **changes)
    with pytest.raises(DefinitionError) as caught:
        load_definition(str(path))
    assert caught.value.field == field
    assert message in caught.value.message
    nested = "may not include" in message  # named in the included file, where it is
    if nested:
        assert caught.value.message == message
    assert caught.value.path.name == (f"{COMPOSED}.yaml" if nested else "composed.yaml")


def test_links_are_for_compositions_only(tmp_path: Path) -> None:
    """A definition that includes nothing has one testbed's groups, which reach each other:
    links there are refused."""
    data = yaml.safe_load(
        (Path(__file__).parents[2] / "testbeds/definitions/hpc-access.yaml").read_text()
    )
    data["links"] = [{"from": ["login"], "to": "controller", "ports": [{"port": 636}]}]
    path = tmp_path / "alone.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError) as caught:
        load_definition(str(path))
    assert "this definition includes none" in caught.value.message


def test_bad_composition_exits_2_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`up` of a clashing composition: one line naming file and field, exit 2, no state."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    path = composed(tmp_path, include=[{"testbed": "hpc-access"}, {"testbed": "data-movement"}])
    assert main(["up", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"testbed: error: {path}: include[data-movement].node_groups:")
    assert err.count("\n") == 1
    assert not (tmp_path / "state").exists()
