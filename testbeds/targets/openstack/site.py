"""The OpenStack target's section of a site profile (`openstack:`), and a plan's section
checked before anything is created."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from testbeds.errors import DefinitionError
from testbeds.model.fields import CIDR, IPAddress, Strict, UserName
from testbeds.model.loader import missing_site_section, site_dir

if TYPE_CHECKING:
    from testbeds.model.plan import Plan
    from testbeds.model.schema import NodeGroup


class OpenStackSite(Strict):
    """Values the OpenStack target needs from a site: what its cloud calls things."""

    cloud: str = Field(description="entry in clouds.yaml (as OS_CLOUD would name it)")
    external_network: str = Field(description="network floating IPs and the router use")
    image: str = Field(description="Debian 12 image every node boots")
    flavor: str = Field(description="flavor of nodes whose group has no entry in flavors")
    flavors: dict[str, str] = Field(default_factory=dict, description="flavor per node group")
    gpu_flavor: str | None = Field(default=None, description="flavor of groups with gpus > 0")
    infiniband_network: str | None = Field(
        default=None, description="provider network of the IB/RoCE fabric, for infiniband groups"
    )
    infiniband_vnic_type: Literal["direct", "direct-physical", "macvtap", "normal"] = "direct"
    allowed_ssh_cidrs: tuple[CIDR, ...] = Field(
        min_length=1, description="networks allowed to reach the entry node over SSH"
    )
    allowed_service_cidrs: tuple[CIDR, ...] = Field(
        default=(), description="networks allowed to reach exposed ports (default: the SSH ones)"
    )
    subnet_cidr: CIDR = "10.42.0.0/24"
    dns_nameservers: tuple[IPAddress, ...] = ()
    ssh_user: UserName = Field(default="debian", description="login user of the image")
    volume_type: str | None = None


def openstack_site(plan: Plan) -> OpenStackSite:
    """The plan's OpenStack site values, or an error naming the file and field."""
    site = plan.site.openstack
    if site is None:
        raise missing_site_section(plan.site.name, "openstack")
    for group in plan.definition.node_groups:
        if group.traits.gpus and group.name not in site.flavors and not site.gpu_flavor:
            raise DefinitionError(
                site_dir(plan.site.name) / "site.yml",
                "openstack.gpu_flavor",
                f"missing: node group {group.name!r} has GPUs and no flavor of its own",
            )
    return site


def flavor_for(group: NodeGroup, site: OpenStackSite) -> str:
    if group.name in site.flavors:
        return site.flavors[group.name]
    if group.traits.gpus and site.gpu_flavor:
        return site.gpu_flavor
    return site.flavor
