"""The OpenStack infrastructure of one testbed instance, as a Pulumi component made of one
component per concern, everything derived from the plan (definition + site profile):

- network: one network and subnet behind a router to the site's external network;
- security: groups that let the nodes talk to each other, SSH reach only the entry node
  and only from the site's allowed networks, and the definition's exposed ports reach only
  the groups that expose them; in a composed testbed, between the included testbeds only
  the links the composition declares (and the entry node's SSH);
- compute: a server group per node group, one instance per node with the site's flavor
  and image (GPU flavor for GPU groups, a port on the IB/RoCE provider network for
  InfiniBand groups), each with a host key made for cloud-init;
- storage: a volume per shared filesystem on the node that serves it;
- access: a floating IP on the entry node, and the nodes as the control node reaches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from testbeds.model.plan import Plan
from testbeds.targets.openstack.program.access import Access
from testbeds.targets.openstack.program.compute import Compute
from testbeds.targets.openstack.program.network import Network
from testbeds.targets.openstack.program.security import Security
from testbeds.targets.openstack.program.storage import Storage
from testbeds.targets.openstack.site import OpenStackSite


@dataclass(frozen=True)
class OpenStackTestbedArgs:
    plan: Plan
    site: OpenStackSite
    public_key: pulumi.Input[str]


class OpenStackTestbed(pulumi.ComponentResource):
    """Network, security, compute, storage and access of one testbed instance."""

    # CloudNode.as_output() of every node, and the entry node's floating IP.
    nodes: pulumi.Output[list[dict[str, Any]]]
    entry_address: pulumi.Output[str]
    # Per elastic node group: what its servers are made of (flavor_id, image_id,
    # network_id, security_group_ids, key_name, server_group_id).
    elastic_groups: dict[str, dict[str, pulumi.Output[Any]]]

    def __init__(
        self, name: str, args: OpenStackTestbedArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("testbeds:openstack:Testbed", name, None, opts)
        plan, site = args.plan, args.site
        network = Network(name, site, self)
        security = Security(name, site, plan.definition, plan.entry_node().group, self)
        compute = Compute(name, plan, site, network, security, args.public_key, self)
        Storage(name, plan, site, compute.instances, self)
        access = Access(name, plan, site, compute, self)
        self.nodes, self.entry_address = access.nodes, access.entry_address
        self.elastic_groups = compute.elastic_groups
        self.register_outputs(
            {
                "nodes": self.nodes,
                "entry_address": self.entry_address,
                "elastic_groups": self.elastic_groups,
            }
        )
