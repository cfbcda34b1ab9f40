"""The instances: a server group per node group, one instance per node with the site's
flavor and image (the GPU flavor for GPU groups, a second port on the IB/RoCE provider
network for InfiniBand groups); each node makes its own host key, which the control node
reads from its console log (testbeds/targets/cloud/console_keys.py). Elastic nodes get no instance:
the group's flavor, image, network and security groups are handed on for them."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_openstack as openstack

from testbeds.model.plan import Plan
from testbeds.targets.cloud.cloud_init import user_data
from testbeds.targets.openstack.program.network import Network
from testbeds.targets.openstack.program.part import Part
from testbeds.targets.openstack.program.security import Security
from testbeds.targets.openstack.site import OpenStackSite, flavor_for

# vNIC types that pass the VF straight to the guest: Neutron cannot filter them.
SRIOV_VNIC_TYPES = frozenset({"direct", "direct-physical"})


class Compute(Part):
    # Per node name.
    ports: dict[str, openstack.networking.Port]
    instances: dict[str, openstack.compute.Instance]

    def __init__(
        self,
        name: str,
        plan: Plan,
        site: OpenStackSite,
        network: Network,
        security: Security,
        public_key: pulumi.Input[str],
        testbed: pulumi.Resource,
    ) -> None:
        super().__init__("Compute", f"{name}-compute", testbed)
        groups = {g.name: g for g in plan.definition.node_groups}
        keypair = openstack.compute.Keypair(f"{name}-key", public_key=public_key, opts=self.child)
        server_groups = {
            group.name: openstack.compute.ServerGroup(
                f"{name}-{group.name}",
                policies="anti-affinity" if group.anti_affinity else "soft-anti-affinity",
                opts=self.child,
            )
            for group in plan.definition.node_groups
        }
        ib_network = (
            openstack.networking.get_network_output(name=site.infiniband_network)
            if site.infiniband_network
            else None
        )
        entry = plan.entry_node().name
        self.ports, self.instances = {}, {}
        after_subnet = pulumi.ResourceOptions.merge(
            self.child, pulumi.ResourceOptions(depends_on=[network.subnet])
        )
        for node in plan.nodes:
            groups_of_port = security.port_groups(node.group, entry=node.name == entry)
            self.ports[node.name] = openstack.networking.Port(
                f"{name}-{node.name}",
                network_id=network.network.id,
                fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=network.subnet.id)],
                security_group_ids=groups_of_port,
                opts=self.child,
            )
            networks = [openstack.compute.InstanceNetworkArgs(port=self.ports[node.name].id)]
            if node.traits.infiniband and ib_network is not None:
                # SR-IOV ports (direct, direct-physical) bypass Neutron's filtering: they get
                # no security group. Every other kind gets the internal group, open only to
                # the testbed's own nodes. Port security itself is the provider network's
                # setting: Neutron's default policy lets only the network's owner (the
                # site) change it on a port.
                sriov = site.infiniband_vnic_type in SRIOV_VNIC_TYPES
                ib_port = openstack.networking.Port(
                    f"{name}-{node.name}-ib",
                    network_id=ib_network.id,
                    binding=openstack.networking.PortBindingArgs(
                        vnic_type=site.infiniband_vnic_type
                    ),
                    no_security_groups=sriov,
                    security_group_ids=None if sriov else security.fabric_groups(node.group),
                    opts=self.child,
                )
                networks.append(openstack.compute.InstanceNetworkArgs(port=ib_port.id))
            self.instances[node.name] = openstack.compute.Instance(
                f"{name}-{node.name}",
                name=f"{plan.instance}-{node.name}",
                flavor_name=flavor_for(groups[node.group], site),
                image_name=site.image,
                key_pair=keypair.name,
                networks=networks,
                scheduler_hints=[
                    openstack.compute.InstanceSchedulerHintArgs(group=server_groups[node.group].id)
                ],
                user_data=user_data(node, plan.instance, site.ssh_user),
                metadata={"wp5-testbeds.instance": plan.instance, "wp5-testbeds.node": node.name},
                opts=after_subnet,
            )
        # What the elastic groups' servers are made of: their nodes are no instances here,
        # the node broker creates and deletes them (testbeds.elastic.openstack_nodes).
        self.elastic_groups: dict[str, dict[str, pulumi.Output[Any]]] = {
            group: {
                "flavor_id": openstack.compute.get_flavor_output(
                    name=flavor_for(groups[group], site)
                ).id,
                "image_id": openstack.images.get_image_output(name=site.image, most_recent=True).id,
                "network_id": network.network.id,
                "security_group_ids": pulumi.Output.all(*security.port_groups(group, entry=False)),
                "key_name": keypair.name,
                "server_group_id": server_groups[group].id,
            }
            for group in sorted({n.group for n in plan.elastic_nodes})
        }
        self.register_outputs(
            {
                "instances": {n: i.id for n, i in self.instances.items()},
                "elastic_groups": self.elastic_groups,
            }
        )
