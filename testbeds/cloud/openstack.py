"""The OpenStack infrastructure of one testbed instance, as a Pulumi component.

Everything is derived from the plan (definition + site profile): one network and subnet
behind a router to the site's external network; security groups that let the nodes talk
to each other, SSH reach only the entry node and only from the site's allowed networks,
and the definition's exposed ports reach only the groups that expose them; a server group
per node group; one instance per node with the site's flavor and image (GPU flavor for
GPU groups, a port on the IB/RoCE provider network for InfiniBand groups); a volume per
shared filesystem on the node that serves it; a floating IP on the entry node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_openstack as openstack
import pulumi_tls as tls

from testbeds.cloud.access import CloudNode
from testbeds.cloud.cloud_init import user_data
from testbeds.cloud.sites import flavor_for
from testbeds.plan import Plan, PlannedNode
from testbeds.schema import NodeGroup, OpenStackSite

# vNIC types that pass the VF straight to the guest: Neutron cannot filter them.
SRIOV_VNIC_TYPES = frozenset({"direct", "direct-physical"})

SSH_PORT = 22


@dataclass(frozen=True)
class OpenStackTestbedArgs:
    plan: Plan
    site: OpenStackSite
    public_key: pulumi.Input[str]


class OpenStackTestbed(pulumi.ComponentResource):
    """Network, security, instances, volumes and entry IP of one testbed instance."""

    nodes: pulumi.Output[list[dict[str, Any]]]
    entry_address: pulumi.Output[str]

    def __init__(
        self, name: str, args: OpenStackTestbedArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("testbeds:openstack:Testbed", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        plan, site = args.plan, args.site
        groups = {g.name: g for g in plan.definition.node_groups}

        network, subnet = self._network()
        internal, ssh, exposed = self._security_groups(groups)
        keypair = openstack.compute.Keypair(
            f"{name}-key", public_key=args.public_key, opts=self._child
        )
        server_groups = {
            group.name: openstack.compute.ServerGroup(
                f"{name}-{group.name}",
                policies="anti-affinity" if group.anti_affinity else "soft-anti-affinity",
                opts=self._child,
            )
            for group in plan.definition.node_groups
        }
        ib_network = (
            openstack.networking.get_network_output(name=site.infiniband_network)
            if site.infiniband_network
            else None
        )

        entry = plan.entry_node().name
        # Host keys made here and handed to cloud-init, so the control node knows every
        # node's key before it first connects and can check it strictly.
        host_keys = {
            node.name: tls.PrivateKey(
                f"{name}-{node.name}-host", algorithm="ED25519", opts=self._child
            )
            for node in plan.nodes
        }
        ports: dict[str, openstack.networking.Port] = {}
        instances: dict[str, openstack.compute.Instance] = {}
        for node in plan.nodes:
            security = [internal.id]
            if node.name == entry:
                security.append(ssh.id)
            if node.group in exposed:
                security.append(exposed[node.group].id)
            ports[node.name] = openstack.networking.Port(
                f"{name}-{node.name}",
                network_id=network.id,
                fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=subnet.id)],
                security_group_ids=security,
                opts=self._child,
            )
            networks = [openstack.compute.InstanceNetworkArgs(port=ports[node.name].id)]
            if node.traits.infiniband and ib_network is not None:
                # SR-IOV ports (direct, direct-physical) bypass Neutron's filtering, which
                # must then be off; every other kind keeps it, open only to the testbed's
                # own nodes (the internal group).
                sriov = site.infiniband_vnic_type in SRIOV_VNIC_TYPES
                ib_port = openstack.networking.Port(
                    f"{name}-{node.name}-ib",
                    network_id=ib_network.id,
                    binding=openstack.networking.PortBindingArgs(
                        vnic_type=site.infiniband_vnic_type
                    ),
                    port_security_enabled=not sriov,
                    security_group_ids=None if sriov else [internal.id],
                    opts=self._child,
                )
                networks.append(openstack.compute.InstanceNetworkArgs(port=ib_port.id))
            instances[node.name] = openstack.compute.Instance(
                f"{name}-{node.name}",
                name=f"{plan.instance}-{node.name}",
                flavor_name=flavor_for(groups[node.group], site),
                image_name=site.image,
                key_pair=keypair.name,
                networks=networks,
                scheduler_hints=[
                    openstack.compute.InstanceSchedulerHintArgs(group=server_groups[node.group].id)
                ],
                user_data=self._user_data(node, host_keys[node.name]),
                metadata={"wp5-testbeds.instance": plan.instance, "wp5-testbeds.node": node.name},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[subnet]),
            )

        self._volumes(instances)
        floating_ip = openstack.networking.FloatingIp(
            f"{name}-entry", pool=site.external_network, opts=self._child
        )
        openstack.networking.FloatingIpAssociate(
            f"{name}-entry",
            floating_ip=floating_ip.address,
            port_id=ports[entry].id,
            opts=self._child,
        )
        self.entry_address = floating_ip.address
        count = len(plan.nodes)
        self.nodes = pulumi.Output.all(
            *(ports[n.name].all_fixed_ips.apply(lambda ips: ips[0]) for n in plan.nodes),
            *(host_keys[n.name].public_key_openssh for n in plan.nodes),
        ).apply(lambda values: self._inventory_nodes(values[:count], values[count:]))
        self.register_outputs({"nodes": self.nodes, "entry_address": self.entry_address})

    def _user_data(self, node: PlannedNode, host_key: tls.PrivateKey) -> pulumi.Output[str]:
        """cloud-init for the node, with its host key: a secret."""
        plan, site = self._args.plan, self._args.site

        def render(keys: list[str]) -> str:
            return user_data(node, plan.instance, site.ssh_user, host_key=(keys[0], keys[1]))

        rendered: pulumi.Output[str] = pulumi.Output.all(
            host_key.private_key_openssh, host_key.public_key_openssh
        ).apply(render)
        return pulumi.Output.secret(rendered)

    def _network(self) -> tuple[openstack.networking.Network, openstack.networking.Subnet]:
        name, site = self._name, self._args.site
        network = openstack.networking.Network(f"{name}-net", admin_state_up=True, opts=self._child)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            network_id=network.id,
            cidr=site.subnet_cidr,
            ip_version=4,
            dns_nameservers=list(site.dns_nameservers),
            opts=self._child,
        )
        external = openstack.networking.get_network_output(name=site.external_network)
        router = openstack.networking.Router(
            f"{name}-router", external_network_id=external.id, opts=self._child
        )
        openstack.networking.RouterInterface(
            f"{name}-router", router_id=router.id, subnet_id=subnet.id, opts=self._child
        )
        return network, subnet

    def _security_groups(
        self, groups: dict[str, NodeGroup]
    ) -> tuple[
        openstack.networking.SecGroup,
        openstack.networking.SecGroup,
        dict[str, openstack.networking.SecGroup],
    ]:
        name, site = self._name, self._args.site
        internal = openstack.networking.SecGroup(
            f"{name}-internal",
            description="testbed nodes reach each other on every port",
            delete_default_rules=False,
            opts=self._child,
        )
        for ethertype in ("IPv4", "IPv6"):
            openstack.networking.SecGroupRule(
                f"{name}-internal-{ethertype.lower()}",
                direction="ingress",
                ethertype=ethertype,
                remote_group_id=internal.id,
                security_group_id=internal.id,
                opts=self._child,
            )
        ssh = openstack.networking.SecGroup(
            f"{name}-ssh",
            description="SSH to the entry node from the site's networks",
            opts=self._child,
        )
        for index, cidr in enumerate(site.allowed_ssh_cidrs):
            self._ingress(f"{name}-ssh-{index}", ssh, SSH_PORT, "tcp", cidr)
        exposed: dict[str, openstack.networking.SecGroup] = {}
        service_cidrs = site.allowed_service_cidrs or site.allowed_ssh_cidrs
        for group in groups.values():
            if not group.expose:
                continue
            exposed[group.name] = openstack.networking.SecGroup(
                f"{name}-{group.name}-services",
                description=f"ports node group {group.name} exposes",
                opts=self._child,
            )
            for port in group.expose:
                for index, cidr in enumerate(service_cidrs):
                    self._ingress(
                        f"{name}-{group.name}-{port.protocol}{port.port}-{index}",
                        exposed[group.name],
                        port.port,
                        port.protocol,
                        cidr,
                    )
        return internal, ssh, exposed

    def _ingress(
        self,
        resource_name: str,
        group: openstack.networking.SecGroup,
        port: int,
        protocol: str,
        cidr: str,
    ) -> None:
        openstack.networking.SecGroupRule(
            resource_name,
            direction="ingress",
            ethertype="IPv6" if ":" in cidr else "IPv4",
            protocol=protocol,
            port_range_min=port,
            port_range_max=port,
            remote_ip_prefix=cidr,
            security_group_id=group.id,
            opts=self._child,
        )

    def _volumes(self, instances: dict[str, openstack.compute.Instance]) -> None:
        """One volume per shared filesystem, attached to the first node of its server group."""
        plan, site = self._args.plan, self._args.site
        for fs in plan.definition.shared_filesystems:
            label = fs.path.strip("/").replace("/", "-") or "root"
            server = next(n for n in plan.nodes if n.group == fs.server)
            volume = openstack.blockstorage.Volume(
                f"{self._name}-{label}",
                size=fs.size_gb,
                volume_type=site.volume_type,
                description=f"{fs.path} of testbed {plan.instance}",
                opts=self._child,
            )
            openstack.compute.VolumeAttach(
                f"{self._name}-{label}",
                instance_id=instances[server.name].id,
                volume_id=volume.id,
                opts=self._child,
            )

    def _inventory_nodes(self, addresses: list[str], host_keys: list[str]) -> list[dict[str, Any]]:
        """The nodes as CloudNode outputs; testbeds.cloud.access makes them reachable."""
        plan = self._args.plan
        entry = plan.entry_node().name
        return [
            CloudNode(
                node.name, node.group, node.roles, address, key.strip(), node.name == entry
            ).as_output()
            for node, address, key in zip(plan.nodes, addresses, host_keys, strict=True)
        ]
