"""The testbed's own network and subnet, routed to the site's external network."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from testbeds.targets.openstack.program.part import Part
from testbeds.targets.openstack.site import OpenStackSite


class Network(Part):
    network: openstack.networking.Network
    subnet: openstack.networking.Subnet

    def __init__(self, name: str, site: OpenStackSite, testbed: pulumi.Resource) -> None:
        super().__init__("Network", f"{name}-network", testbed)
        self.network = openstack.networking.Network(
            f"{name}-net", admin_state_up=True, opts=self.child
        )
        self.subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            network_id=self.network.id,
            cidr=site.subnet_cidr,
            ip_version=4,
            dns_nameservers=list(site.dns_nameservers),
            opts=self.child,
        )
        external = openstack.networking.get_network_output(name=site.external_network)
        router = openstack.networking.Router(
            f"{name}-router", external_network_id=external.id, opts=self.child
        )
        openstack.networking.RouterInterface(
            f"{name}-router", router_id=router.id, subnet_id=self.subnet.id, opts=self.child
        )
        self.register_outputs({"network": self.network.id, "subnet": self.subnet.id})
