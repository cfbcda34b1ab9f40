"""Inventory rendering and layering (common -> site -> generated hosts), read back by Ansible."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from testbeds.errors import DeployError
from testbeds.inventory import inventory_sources, render_inventory
from testbeds.model.plan import Plan, resolve
from testbeds.nodes import ProvisionedNode


def fake_nodes(plan: Plan) -> list[ProvisionedNode]:
    return [
        ProvisionedNode(
            name=n.name,
            group=n.group,
            roles=n.roles,
            address=f"192.0.2.{i + 10}",
            testinfra_uri=f"ssh://root@192.0.2.{i + 10}",
            ansible_vars={"ansible_host": f"192.0.2.{i + 10}", "ansible_user": "root"},
        )
        for i, n in enumerate(plan.nodes)
    ]


@pytest.fixture
def plan() -> Plan:
    return resolve("hpc-access", instance="inv-test")


def test_inventory_lists_groups_per_role_and_node_group(plan: Plan) -> None:
    """Every node is in its node group and in one group per role it has."""
    data = yaml.safe_load(render_inventory(plan, fake_nodes(plan), {"munge_key_src": "/k"}))
    children = data["all"]["children"]
    assert set(children["slurm_compute"]["hosts"]) == {"cpu1", "cpu2", "gpu"}
    assert set(children["cpu"]["hosts"]) == {"cpu1", "cpu2"}
    assert set(children["common"]["hosts"]) == {"controller", "login", "cpu1", "cpu2", "gpu"}
    assert data["all"]["hosts"]["cpu1"]["testbed_traits"]["memory_mb"] == 1000
    assert data["all"]["hosts"]["gpu"]["testbed_traits"]["gpus"] == 2
    assert data["all"]["vars"]["testbed_instance"] == "inv-test"
    assert data["all"]["vars"]["munge_key_src"] == "/k"


def test_missing_node_is_an_error(plan: Plan) -> None:
    """A target that lost a node cannot produce a half inventory."""
    with pytest.raises(DeployError, match="no address for: gpu"):
        render_inventory(plan, fake_nodes(plan)[:-1], {})


def test_values_with_yaml_specials_stay_strings(plan: Plan) -> None:
    """Values are JSON-quoted, so a ':' or '#' in a value cannot break the inventory."""
    nodes = fake_nodes(plan)
    text = render_inventory(plan, nodes, {"odd": "a: b # c"})
    assert yaml.safe_load(text)["all"]["vars"]["odd"] == "a: b # c"


def test_layered_inventory_as_ansible_sees_it(plan: Plan, tmp_path: Path) -> None:
    """ansible-inventory merges common, site and generated hosts; site values win over roles'."""
    generated = tmp_path / "hosts.yml"
    generated.write_text(render_inventory(plan, fake_nodes(plan), {}))
    args = ["ansible-inventory", "--list"]
    for source in inventory_sources("local", generated):
        args += ["-i", source]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    hostvars = data["_meta"]["hostvars"]["cpu1"]
    assert hostvars["common_time_sync"] is False  # from inventories/local/group_vars
    assert hostvars["slurm_use_cgroups"] is False
    assert hostvars["ansible_host"] == "192.0.2.12"
    assert "cpu1" in data["slurm_compute"]["hosts"]
    # common declares the groups even when a testbed leaves them empty
    assert "slurm_login" in data["all"]["children"]
