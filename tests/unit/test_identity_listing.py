"""`testbed show` says what each service accepts, and every role is accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbeds.cli import main
from testbeds.role_facts import role_facts, roles_with

REPO = Path(__file__).resolve().parents[2]


def test_every_role_says_what_its_services_accept() -> None:
    """Each role says what it runs in its own meta/testbed.yml (the tool keeps no table of
    role internals); a role it names as replacing a service exists."""
    roles = {p.name for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").is_file()}
    for role in sorted(roles):
        for service in role_facts(role).services:
            assert service.name and service.accepts, role
            assert service.unless_role is None or service.unless_role in roles, role
    assert roles_with("identity_layer") == {"directory", "token_issuer"}
    assert roles - roles_with("baked") == {"testbed_ca"}


def test_show_lists_what_each_group_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "hpc-access", "--json"]) == 0
    groups = {g["name"]: g for g in json.loads(capsys.readouterr().out)["node_groups"]}
    login = {i["service"]: i["accepts"] for i in groups["login"]["identity"]}
    assert "directory" in login["sshd"]  # the directory's keys, not local key pairs
    assert "token issuer" in login["JupyterHub (HTTPS)"]  # not the hub's own password form
    assert "slapd (ldaps:// 636)" in {i["service"] for i in groups["controller"]["identity"]}


def test_nodes_without_user_accounts_let_only_root_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "pipelines", "--json"]) == 0
    groups = {g["name"]: g for g in json.loads(capsys.readouterr().out)["node_groups"]}
    for name in ("worker", "gpuworker"):  # CI workers resolve no directory accounts
        sshd = [i["accepts"] for i in groups[name]["identity"] if i["service"] == "sshd"]
        assert sshd == ["root by the control node's key; no user logs in"], name


def test_pipelines_services_accept_directory_accounts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "pipelines", "--json"]) == 0
    groups = {g["name"]: g for g in json.loads(capsys.readouterr().out)["node_groups"]}
    service = {i["service"]: i["accepts"] for i in groups["service"]["identity"]}
    for name in ("git (HTTPS)", "OCI registry (HTTPS)", "MLflow (HTTPS)"):
        assert "directory accounts by password" in service[name], name
        assert "htpasswd" not in service[name], name
