"""Security groups: the nodes reach each other, SSH reaches only the entry node and only
from the site's allowed networks, and each exposed port only the group that exposes it."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from testbeds.cloud.openstack.part import Part
from testbeds.schema import NodeGroup, OpenStackSite

SSH_PORT = 22


class Security(Part):
    internal: openstack.networking.SecGroup
    ssh: openstack.networking.SecGroup
    # Per node group that exposes ports.
    exposed: dict[str, openstack.networking.SecGroup]

    def __init__(
        self,
        name: str,
        site: OpenStackSite,
        groups: tuple[NodeGroup, ...],
        testbed: pulumi.Resource,
    ) -> None:
        super().__init__("Security", f"{name}-security", testbed)
        self._name = name
        self.internal = openstack.networking.SecGroup(
            f"{name}-internal",
            description="testbed nodes reach each other on every port",
            delete_default_rules=False,
            opts=self.child,
        )
        for ethertype in ("IPv4", "IPv6"):
            openstack.networking.SecGroupRule(
                f"{name}-internal-{ethertype.lower()}",
                direction="ingress",
                ethertype=ethertype,
                remote_group_id=self.internal.id,
                security_group_id=self.internal.id,
                opts=self.child,
            )
        self.ssh = openstack.networking.SecGroup(
            f"{name}-ssh",
            description="SSH to the entry node from the site's networks",
            opts=self.child,
        )
        for index, cidr in enumerate(site.allowed_ssh_cidrs):
            self._ingress(f"{name}-ssh-{index}", self.ssh, SSH_PORT, "tcp", cidr)
        self.exposed = {}
        service_cidrs = site.allowed_service_cidrs or site.allowed_ssh_cidrs
        for group in (g for g in groups if g.expose):
            self.exposed[group.name] = openstack.networking.SecGroup(
                f"{name}-{group.name}-services",
                description=f"ports node group {group.name} exposes",
                opts=self.child,
            )
            for port in group.expose:
                for index, cidr in enumerate(service_cidrs):
                    self._ingress(
                        f"{name}-{group.name}-{port.protocol}{port.port}-{index}",
                        self.exposed[group.name],
                        port.port,
                        port.protocol,
                        cidr,
                    )
        self.register_outputs({"internal": self.internal.id, "ssh": self.ssh.id})

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
            opts=self.child,
        )
