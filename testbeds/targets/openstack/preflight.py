"""Before anything is created on OpenStack: does the cloud have what the site profile names,
and do the project's quotas cover the testbed? Every missing item is reported by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from testbeds.errors import PreflightError
from testbeds.model.plan import Plan
from testbeds.targets.openstack.site import flavor_for, openstack_site


class Cloud(Protocol):
    """The part of an openstacksdk Connection the preflight uses."""

    def get_flavor(self, name_or_id: str) -> Any: ...
    def get_image(self, name_or_id: str) -> Any: ...
    def get_network(self, name_or_id: str) -> Any: ...
    def get_compute_limits(self) -> Any: ...
    def get_volume_limits(self) -> Any: ...
    def has_service(self, service_key: str) -> bool: ...


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
    shared = plan.definition.shared_filesystems
    # A cloud without block storage answers no volume call at all (no endpoint).
    volumes_here = not shared or cloud.has_service("volume")
    if not volumes_here:
        paths = ", ".join(fs.path for fs in shared)
        found.append(f"block storage service (volumes for the shared filesystems {paths})")
    if any(f is None for f in flavors.values()):  # no sum over flavors that do not exist
        return found
    need = needs(plan, flavors)
    compute = cloud.get_compute_limits()
    volume_abs = None
    if shared and volumes_here:
        volume = cloud.get_volume_limits()
        volume_abs = getattr(volume, "absolute", volume)
    quotas = [
        (
            "instances",
            need.instances,
            _free(compute, "max_total_instances", "total_instances_used"),
        ),
        ("cores", need.cores, _free(compute, "max_total_cores", "total_cores_used")),
        ("RAM (MB)", need.ram_mb, _free(compute, "max_total_ram_size", "total_ram_used")),
    ]
    if volume_abs is not None:
        quotas += [
            ("volumes", need.volumes, _free(volume_abs, "maxTotalVolumes", "totalVolumesUsed")),
            (
                "volume storage (GB)",
                need.volume_gb,
                _free(volume_abs, "maxTotalVolumeGigabytes", "totalGigabytesUsed"),
            ),
        ]
    for label, wanted, free in quotas:
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


def check_site_cloud(plan: Plan) -> None:
    """The pre-flight against the cloud the site profile names (its clouds.yaml entry)."""
    import openstack
    from keystoneauth1.exceptions import ClientException
    from openstack.exceptions import ConfigException, SDKException

    site = openstack_site(plan)
    where = f"site {plan.site.name!r}, openstack.cloud {site.cloud!r}"
    try:
        cloud = openstack.connect(cloud=site.cloud)
        check(cloud, plan)
    except ConfigException as error:
        raise PreflightError(f"{where}: no such entry in clouds.yaml ({error})") from None
    except (ClientException, SDKException) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise PreflightError(
            f"{where}: the cloud did not answer the pre-flight: {type(error).__name__}: "
            f"{first_line}"
        ) from None
