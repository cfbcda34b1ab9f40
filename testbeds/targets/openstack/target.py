"""The OpenStack target: the Pulumi program in stacks/openstack, driven through Pulumi's
Automation API (one stack per instance), with a pre-flight against the cloud first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbeds import paths
from testbeds.model.plan import Plan
from testbeds.nodes import ProvisionedNode
from testbeds.progress import say
from testbeds.state import StateDir
from testbeds.targets.base import NodeStatus, NodeTarget, require_pulumi, run_stack_operation
from testbeds.targets.cloud import console_keys
from testbeds.targets.cloud.access import cloud_nodes
from testbeds.targets.openstack.preflight import check_site_cloud
from testbeds.targets.openstack.site import openstack_site

PROJECT = "wp5-testbeds-openstack"


def stack_dir() -> Path:
    return paths.project_root() / "stacks" / "openstack"


def _stack(instance: str, create: bool) -> Any:
    from pulumi import automation as auto

    if create:
        return auto.create_or_select_stack(stack_name=instance, work_dir=str(stack_dir()))
    return auto.select_stack(stack_name=instance, work_dir=str(stack_dir()))


class OpenStackTarget(NodeTarget):
    name = "openstack"
    # NFS from the server node: the cloud gives block volumes, not shared filesystems.
    # Real hardware: GPU flavors and IB/RoCE ports are what the site profile names.

    def preflight(self, plan: Plan) -> None:
        openstack_site(plan)
        require_pulumi("openstack")
        check_site_cloud(plan)

    def provision(self, plan: Plan, state: StateDir) -> list[ProvisionedNode]:
        stack = _stack(plan.instance, create=True)
        for key, value in (
            ("testbed", plan.name),
            ("site", plan.site.name),
            ("instance", plan.instance),
            # `testbed up` configures and checks the nodes itself, with live progress.
            ("configure", "false"),
        ):
            stack.set_config(f"{PROJECT}:{key}", _config_value(value))
        say(f"pulumi up: stack {plan.instance} in {stack_dir()}")
        result = run_stack_operation(stack, "up", lambda line: say(f"  {line.rstrip()}"))
        outputs = result.outputs
        site = openstack_site(plan)
        say("reading the nodes' SSH host keys from their console logs")
        return cloud_nodes(
            state,
            outputs["nodes"].value,
            outputs["entry_address"].value,
            outputs["ssh_private_key"].value,
            site.ssh_user,
            console_keys.from_cloud(site.cloud),
        )

    def status(self, instance: str) -> list[NodeStatus]:
        require_pulumi("openstack")
        outputs = _stack(instance, create=False).outputs()
        nodes = outputs.get("nodes")
        if nodes is None:
            return []
        return [
            NodeStatus(name=n["name"], state="running", detail=n["address"]) for n in nodes.value
        ]

    def destroy(self, instance: str) -> list[str]:
        require_pulumi("openstack")
        stack = _stack(instance, create=False)
        result = run_stack_operation(stack, "destroy", lambda line: say(f"  {line.rstrip()}"))
        stack.workspace.remove_stack(instance)
        return [f"pulumi stack {instance} ({result.summary.resource_changes or {}})"]

    def leftovers(self, instance: str) -> list[str]:
        from pulumi import automation as auto

        try:
            _stack(instance, create=False)
        except auto.StackNotFoundError:
            return []
        return [f"pulumi stack {instance}"]


def _config_value(value: str) -> Any:
    from pulumi import automation as auto

    return auto.ConfigValue(value=value)
