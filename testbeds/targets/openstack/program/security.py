"""Security groups: the nodes of a testbed reach each other, SSH reaches only the entry node
and only from the site's allowed networks, and each exposed port only the group that
exposes it. In a composed testbed each included testbed's nodes reach each other, and
across testbeds only the links the composition declares pass (and the entry node's SSH,
which the control node goes through to reach every node)."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from testbeds.model.schema import TestbedDefinition
from testbeds.targets.openstack.program.part import Part
from testbeds.targets.openstack.site import OpenStackSite

SSH_PORT = 22


class Security(Part):
    # Per testbed the nodes come from (one, unless composed): its nodes reach each other.
    internal: dict[str, openstack.networking.SecGroup]
    ssh: openstack.networking.SecGroup
    # Per node group that exposes ports.
    exposed: dict[str, openstack.networking.SecGroup]
    # Per node group that links let in: the links' ports, from their source groups.
    linked: dict[str, openstack.networking.SecGroup]
    # Per node group that is a link's source (or the entry): no rules, it names the group
    # as a remote in the rules of the groups it may reach.
    members: dict[str, openstack.networking.SecGroup]

    def __init__(
        self,
        name: str,
        site: OpenStackSite,
        definition: TestbedDefinition,
        entry_group: str,
        testbed: pulumi.Resource,
    ) -> None:
        super().__init__("Security", f"{name}-security", testbed)
        self._name = name
        self._definition = definition
        self._entry_group = entry_group
        origins = dict.fromkeys(definition.origin(g.name) for g in definition.node_groups)
        composed = bool(definition.include)
        self.internal = {
            origin: self._internal(f"{name}-internal-{origin}" if composed else f"{name}-internal")
            for origin in origins
        }
        self.ssh = openstack.networking.SecGroup(
            f"{name}-ssh",
            description="SSH to the entry node from the site's networks",
            opts=self.child,
        )
        for index, cidr in enumerate(site.allowed_ssh_cidrs):
            self._ingress(f"{name}-ssh-{index}", self.ssh, SSH_PORT, "tcp", cidr=cidr)
        self.exposed = {}
        service_cidrs = site.allowed_service_cidrs or site.allowed_ssh_cidrs
        for group in (g for g in definition.node_groups if g.expose):
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
                        cidr=cidr,
                    )
        self.members, self.linked = {}, {}
        if composed:
            self._links(origins)
        self.register_outputs({"ssh": self.ssh.id})

    def _internal(self, resource_name: str) -> openstack.networking.SecGroup:
        group = openstack.networking.SecGroup(
            resource_name,
            description="testbed nodes reach each other on every port",
            delete_default_rules=False,
            opts=self.child,
        )
        for ethertype in ("IPv4", "IPv6"):
            openstack.networking.SecGroupRule(
                f"{resource_name}-{ethertype.lower()}",
                direction="ingress",
                ethertype=ethertype,
                remote_group_id=group.id,
                security_group_id=group.id,
                opts=self.child,
            )
        return group

    def _member(self, group: str) -> openstack.networking.SecGroup:
        if group not in self.members:
            self.members[group] = openstack.networking.SecGroup(
                f"{self._name}-{group}-members",
                description=f"the nodes of group {group}, as a source links admit",
                opts=self.child,
            )
        return self.members[group]

    def _links(self, origins: dict[str, None]) -> None:
        name, definition = self._name, self._definition
        entry = self._member(self._entry_group)
        entry_origin = definition.origin(self._entry_group)
        for origin in origins:
            if origin != entry_origin:
                self._ingress(
                    f"{name}-internal-{origin}-ssh-from-entry",
                    self.internal[origin],
                    SSH_PORT,
                    "tcp",
                    remote=entry,
                )
        for index, link in enumerate(definition.links):
            if link.to not in self.linked:
                self.linked[link.to] = openstack.networking.SecGroup(
                    f"{name}-{link.to}-links",
                    description=f"ports of group {link.to} that other testbeds' groups reach",
                    opts=self.child,
                )
            for source in link.sources:
                for port in link.ports:
                    self._ingress(
                        f"{name}-link{index}-{source}-{port.protocol}{port.port}",
                        self.linked[link.to],
                        port.port,
                        port.protocol,
                        remote=self._member(source),
                    )

    def port_groups(self, group: str, entry: bool) -> list[pulumi.Output[str]]:
        """The security groups a node of this group holds on the testbed's network."""
        held = [self.internal[self._definition.origin(group)]]
        if entry:
            held.append(self.ssh)
        held += [
            by_group[group]
            for by_group in (self.exposed, self.linked, self.members)
            if group in by_group
        ]
        return [g.id for g in held]

    def fabric_groups(self, group: str) -> list[pulumi.Output[str]]:
        """The security groups of a node's filterable fabric port: its own testbed only."""
        return [self.internal[self._definition.origin(group)].id]

    def _ingress(
        self,
        resource_name: str,
        group: openstack.networking.SecGroup,
        port: int,
        protocol: str,
        cidr: str | None = None,
        remote: openstack.networking.SecGroup | None = None,
    ) -> None:
        openstack.networking.SecGroupRule(
            resource_name,
            direction="ingress",
            ethertype="IPv6" if cidr and ":" in cidr else "IPv4",
            protocol=protocol,
            port_range_min=port,
            port_range_max=port,
            remote_ip_prefix=cidr,
            remote_group_id=remote.id if remote is not None else None,
            security_group_id=group.id,
            opts=self.child,
        )
