"""Before anything is created on OpenStack: does the cloud have what the site profile names,
and do the project's quotas cover the testbed? Every missing item is reported by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from testbeds.cloud.sites import flavor_for, openstack_site
from testbeds.errors import PreflightError
from testbeds.model.plan import Plan


class Cloud(Protocol):
    """The part of an openstacksdk Connection the preflight uses."""

    def get_flavor(self, name_or_id: str) -> Any: ...
    def get_image(self, name_or_id: str) -> Any: ...
    def get_network(self, name_or_id: str) -> Any: ...
    def get_compute_limits(self) -> Any: ...
    def get_volume_limits(self) -> Any: ...


@dataclass(frozen=True)
class Needs:
    instances: int
    cores: int
    ram_mb: int
    volumes: int
    volume_gb: int


def needs(plan: Plan, flavors: dict[str, Any]) -> Needs:
    site = openstack_site(plan)
    groups = {g.name: g for g in plan.definition.node_groups}
    picked = [flavors[flavor_for(groups[n.group], site)] for n in plan.nodes]
    shared = plan.definition.shared_filesystems
    return Needs(
        instances=len(plan.nodes),
        cores=sum(int(f.vcpus) for f in picked),
        ram_mb=sum(int(f.ram) for f in picked),
        volumes=len(shared),
        volume_gb=sum(fs.size_gb for fs in shared),
    )


def _free(limits: Any, maximum: str, used: str) -> float:
    cap = getattr(limits, maximum, None)
    if cap is None or int(cap) < 0:  # -1: unlimited
        return float("inf")
    return int(cap) - int(getattr(limits, used, 0) or 0)


def problems(cloud: Cloud, plan: Plan) -> list[str]:
    """Everything the cloud lacks for this plan, each named; empty when it can host it."""
    site = openstack_site(plan)
    found: list[str] = []
    groups = {g.name: g for g in plan.definition.node_groups}
    flavor_names = sorted({flavor_for(groups[n.group], site) for n in plan.nodes})
    flavors = {name: cloud.get_flavor(name) for name in flavor_names}
    found += [f"flavor {name!r} (openstack.flavor*)" for name, f in flavors.items() if f is None]
    if cloud.get_image(site.image) is None:
        found.append(f"image {site.image!r} (openstack.image)")
    if cloud.get_network(site.external_network) is None:
        found.append(f"external network {site.external_network!r} (openstack.external_network)")
    if site.infiniband_network and cloud.get_network(site.infiniband_network) is None:
        found.append(
            f"InfiniBand network {site.infiniband_network!r} (openstack.infiniband_network)"
        )
    if found:  # quotas cannot be summed over flavors that do not exist
        return found
    need = needs(plan, flavors)
    compute = cloud.get_compute_limits()
    volume = cloud.get_volume_limits()
    volume_abs = getattr(volume, "absolute", volume)
    for label, wanted, free in (
        (
            "instances",
            need.instances,
            _free(compute, "max_total_instances", "total_instances_used"),
        ),
        ("cores", need.cores, _free(compute, "max_total_cores", "total_cores_used")),
        ("RAM (MB)", need.ram_mb, _free(compute, "max_total_ram_size", "total_ram_used")),
        ("volumes", need.volumes, _free(volume_abs, "maxTotalVolumes", "totalVolumesUsed")),
        (
            "volume storage (GB)",
            need.volume_gb,
            _free(volume_abs, "maxTotalVolumeGigabytes", "totalGigabytesUsed"),
        ),
    ):
        if wanted > free:
            found.append(f"quota for {label}: the testbed needs {wanted}, {free:g} free")
    return found


def check(cloud: Cloud, plan: Plan) -> None:
    missing = problems(cloud, plan)
    if missing:
        raise PreflightError(
            f"OpenStack cloud {openstack_site(plan).cloud!r} of site {plan.site.name!r} cannot "
            f"host {plan.instance}; nothing was created. Missing:\n  " + "\n  ".join(missing)
        )
