"""Configure and check a cloud testbed as a step of `pulumi up`: a Pulumi dynamic resource
that runs the configure and verify stages (`deploy.configure`) on the nodes a cloud
program made. It sits beside `deploy`, above the targets: a stack's entry point
(`stacks/openstack/__main__.py`) adds it to the target's program.

Its inputs are the provisioned nodes and content hashes of the definition, the site
profile and the roles; when any of them changes, Pulumi calls update() and the playbook
and the checks run again. It needs no provider plugin beyond the Python SDK. The munge
key arrives as a Pulumi secret and is written only into the instance's private state
directory, where the roles read it from.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from testbeds import paths
from testbeds.digests import tree_digest
from testbeds.model.loader import definition_path, site_dir

# Inputs whose change means the nodes must be configured again.
TRIGGERS = ("nodes", "entry_address", "definition_hash", "site_hash", "roles_hash")


def tree_hash(*roots: Path) -> str:
    """A hash of every file under the given folders (names and contents), each folder's
    by `tree_digest`, as baked images and the no-op `up` digest theirs."""
    return hashlib.sha256("".join(tree_digest(root) for root in roots).encode()).hexdigest()


def source_hashes(testbed: str, site: str) -> dict[str, str]:
    return {
        "definition_hash": tree_hash(definition_path(testbed).parent, paths.PLAYBOOKS_DIR),
        "site_hash": tree_hash(site_dir(site), paths.inventories_dir() / "common"),
        "roles_hash": tree_hash(paths.roles_dir()),
    }


def needs_configuring(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    return [key for key in TRIGGERS if olds.get(key) != news.get(key)]


def _run(props: dict[str, Any]) -> dict[str, Any]:
    # Imported here: the provider runs inside the Pulumi engine's Python process.
    from testbeds import deploy
    from testbeds.instance import Instance
    from testbeds.model.plan import resolve
    from testbeds.state import write_private
    from testbeds.targets.cloud import console_keys
    from testbeds.targets.cloud.access import cloud_nodes
    from testbeds.targets.openstack.site import openstack_site

    plan = resolve(
        props["testbed"], site=props["site"], target="openstack", instance=props["instance"]
    )
    instance = Instance.of(plan)
    state = instance.state
    instance.write_record()
    write_private(state.secrets_dir / "munge.key", base64.b64decode(props["munge_key_b64"]))
    instance.nodes = cloud_nodes(
        state,
        props["nodes"],
        props["entry_address"],
        props["ssh_private_key"],
        props["ssh_user"],
        console_keys.from_cloud(openstack_site(plan).cloud),
    )
    result = deploy.configure(instance)
    if result.verify is None or not result.verify.ok:
        raise RuntimeError(
            f"testbed {plan.instance} is configured but failed its checks: {result.verify}"
        )
    assert result.playbook is not None  # configure always runs the playbook
    return {"ansible_changed": result.playbook.changed_total, "checks_passed": result.verify.tests}


class ConfigureProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_=props["instance"], outs={**props, **_run(props)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = needs_configuring(olds, news)
        return dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs={**news, **_run(news)})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo: the instances it configured are deleted by their own resources."""


class TestbedConfiguration(dynamic.Resource):
    """The testbed's playbook and checks, run against the nodes of a cloud stack."""

    __test__ = False
    ansible_changed: pulumi.Output[int]
    checks_passed: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        testbed: str,
        site: str,
        instance: str,
        nodes: pulumi.Input[list[dict[str, Any]]],
        entry_address: pulumi.Input[str],
        munge_key_b64: pulumi.Input[str],
        ssh_private_key: pulumi.Input[str],
        ssh_user: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            ConfigureProvider(),
            name,
            {
                "testbed": testbed,
                "site": site,
                "instance": instance,
                "nodes": nodes,
                "entry_address": entry_address,
                "munge_key_b64": pulumi.Output.secret(munge_key_b64),
                "ssh_private_key": pulumi.Output.secret(ssh_private_key),
                "ssh_user": ssh_user,
                **source_hashes(testbed, site),
                "ansible_changed": None,
                "checks_passed": None,
            },
            opts,
        )
