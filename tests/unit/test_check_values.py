"""Checks read the values the roles got: a port a site overrides in its group_vars reaches
the role (through the layered inventory) and the check alike; no check repeats a role's
default."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from testbeds.checks.conftest import Testbed
from testbeds.checks.hpc_services.test_monitoring import exporter_targets
from testbeds.instance import Instance
from testbeds.inventory import inventory_sources, render_inventory
from testbeds.model.plan import resolve
from testbeds.nodes import ProvisionedNode, write_nodes
from testbeds.state import StateDir
from testbeds.targets import get_target

REPO = Path(__file__).resolve().parents[2]


def provisioned(tmp_path: Path) -> tuple[StateDir, list[ProvisionedNode]]:
    plan = resolve("hpc-access")
    state = StateDir("values", root=tmp_path / "state")
    state.create()
    nodes = [
        ProvisionedNode(n.name, n.group, n.roles, f"10.0.0.{i + 2}", "")
        for i, n in enumerate(plan.nodes)
    ]
    Instance(plan, state, get_target("local"), nodes).write_description()
    write_nodes(state.nodes_file, nodes)
    state.inventory_file.parent.mkdir(parents=True)
    state.inventory_file.write_text(render_inventory(plan, nodes, {}))
    return state, nodes


def test_a_site_override_reaches_the_role_and_the_check(scratch_home: Path, tmp_path: Path) -> None:
    overrides = scratch_home / "inventories" / "local" / "group_vars" / "all"
    overrides.mkdir(parents=True, exist_ok=True)
    (overrides / "monitoring.yml").write_text("node_exporter_port: 9200\n")
    state, _ = provisioned(tmp_path)

    checks = Testbed(state.nodes_file)
    assert checks.value("node_exporter_port") == 9200
    assert exporter_targets(checks) == {f"{n}:9200" for n in checks.group("node_exporter")}
    seen_by_ansible = subprocess.run(
        [
            "ansible-inventory",
            *(
                arg
                for source in inventory_sources("local", state.inventory_file)
                for arg in ("-i", source)
            ),
            "--host",
            "cpu1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(seen_by_ansible.stdout)["node_exporter_port"] == 9200


def test_without_an_override_the_check_reads_the_role_default(tmp_path: Path) -> None:
    state, _ = provisioned(tmp_path)
    checks = Testbed(state.nodes_file)
    assert checks.value("node_exporter_port") == 9100  # roles/node_exporter/defaults
    with pytest.raises(KeyError, match="no role of this testbed sets 'mlflow_port'"):
        checks.value("mlflow_port")
    with pytest.raises(ValueError, match="is a template"):
        checks.value("testbed_ca_dir")


def test_no_check_repeats_a_role_default_port_or_path() -> None:
    """Ports and paths the roles default are read from the values, never written into a
    check (the Kubernetes checks look at the program's workloads, not the roles)."""
    defaults: dict[str, object] = {}
    for path in (REPO / "roles").glob("*/defaults/main.yml"):
        defaults |= yaml.safe_load(path.read_text()) or {}
    literals = {
        name: str(value)
        for name, value in defaults.items()
        if (name.endswith("_port") and isinstance(value, int))
        or (isinstance(value, str) and value.startswith("/") and "{{" not in value)
    }
    checks = [
        p for p in (REPO / "testbeds" / "checks").rglob("*.py") if "kubernetes" not in p.parts
    ]
    found = [
        f"{path.name}: {name} ({literal})"
        for path in checks
        for name, literal in literals.items()
        if (f":{literal}" if name.endswith("_port") else literal) in path.read_text()
    ]
    assert found == []
