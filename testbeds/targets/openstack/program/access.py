"""How the testbed is reached: a floating IP on the entry node, and the nodes as the
control node needs them (CloudNode: fixed address and server id, by which the control node
reads the host key the node made from its console log)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_openstack as openstack

from testbeds.model.plan import Plan
from testbeds.targets.cloud.access import CloudNode
from testbeds.targets.openstack.program.compute import Compute
from testbeds.targets.openstack.program.part import Part
from testbeds.targets.openstack.site import OpenStackSite


class Access(Part):
    entry_address: pulumi.Output[str]
    # CloudNode.as_output() of every node, in plan order.
    nodes: pulumi.Output[list[dict[str, Any]]]

    def __init__(
        self,
        name: str,
        plan: Plan,
        site: OpenStackSite,
        compute: Compute,
        testbed: pulumi.Resource,
    ) -> None:
        super().__init__("Access", f"{name}-access", testbed)
        entry = plan.entry_node().name
        floating_ip = openstack.networking.FloatingIp(
            f"{name}-entry", pool=site.external_network, opts=self.child
        )
        openstack.networking.FloatingIpAssociate(
            f"{name}-entry",
            floating_ip=floating_ip.address,
            port_id=compute.ports[entry].id,
            opts=self.child,
        )
        self.entry_address = floating_ip.address
        count = len(plan.nodes)

        def cloud_nodes(values: list[str]) -> list[dict[str, Any]]:
            addresses, servers = values[:count], values[count:]
            return [
                CloudNode(
                    node.name, node.group, node.roles, address, server, node.name == entry
                ).as_output()
                for node, address, server in zip(plan.nodes, addresses, servers, strict=True)
            ]

        self.nodes = pulumi.Output.all(
            *(compute.ports[n.name].all_fixed_ips.apply(lambda ips: ips[0]) for n in plan.nodes),
            *(compute.instances[n.name].id for n in plan.nodes),
        ).apply(cloud_nodes)
        self.register_outputs({"entry_address": self.entry_address, "nodes": self.nodes})
