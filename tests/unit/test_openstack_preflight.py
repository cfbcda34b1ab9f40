"""OpenStack pre-flight against a stand-in cloud (no OpenStack API is reachable here):
everything the site profile names must exist and the quotas must cover the testbed, each
missing item named; a site that cannot place GPU nodes is refused by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from testbeds.errors import DefinitionError, PreflightError
from testbeds.model.plan import Plan, resolve
from testbeds.model.schema import SiteProfile
from testbeds.targets.openstack.preflight import check, check_site_cloud, problems
from testbeds.targets.openstack.site import openstack_site


def flavor(vcpus: int, ram: int) -> SimpleNamespace:
    return SimpleNamespace(vcpus=vcpus, ram=ram)


@dataclass
class StandInCloud:
    """Answers like openstacksdk's Connection for the calls the pre-flight makes."""

    flavors: dict[str, Any] = field(
        default_factory=lambda: {
            "c4.m16": flavor(4, 16384),
            "c8.m32": flavor(8, 32768),
            "g8.m64.a100x2": flavor(8, 65536),
        }
    )
    images: set[str] = field(default_factory=lambda: {"Debian-12-x86_64"})
    block_storage: bool = True
    networks: set[str] = field(default_factory=lambda: {"ext-net", "roce-provider"})
    compute: dict[str, int] = field(
        default_factory=lambda: {
            "max_total_instances": 20,
            "total_instances_used": 2,
            "max_total_cores": 100,
            "total_cores_used": 10,
            "max_total_ram_size": 512000,
            "total_ram_used": 0,
        }
    )
    volume: dict[str, int] = field(
        default_factory=lambda: {
            "maxTotalVolumes": 10,
            "totalVolumesUsed": 0,
            "maxTotalVolumeGigabytes": 1000,
            "totalGigabytesUsed": 0,
        }
    )

    def get_flavor(self, name_or_id: str) -> Any:
        return self.flavors.get(name_or_id)

    def get_image(self, name_or_id: str) -> Any:
        return name_or_id if name_or_id in self.images else None

    def get_network(self, name_or_id: str) -> Any:
        return name_or_id if name_or_id in self.networks else None

    def get_compute_limits(self) -> Any:
        return SimpleNamespace(**self.compute)

    def get_volume_limits(self) -> Any:
        # Like openstacksdk: a cloud without the service has no endpoint to ask.
        if not self.block_storage:
            raise RuntimeError("Service 'block-storage' is disabled")
        return SimpleNamespace(absolute=SimpleNamespace(**self.volume))

    def has_service(self, service_key: str) -> bool:
        return service_key != "volume" or self.block_storage


@pytest.fixture
def plan() -> Plan:
    return resolve("hpc-access", site="partner-a", target="openstack", instance="hpc-a")


def test_cloud_with_everything_passes(plan: Plan) -> None:
    assert problems(StandInCloud(), plan) == []
    check(StandInCloud(), plan)


def test_each_missing_item_is_named(plan: Plan) -> None:
    cloud = StandInCloud(images=set(), networks={"ext-net"})
    del cloud.flavors["g8.m64.a100x2"]
    assert problems(cloud, plan) == [
        "flavor 'g8.m64.a100x2' (openstack.flavor*)",
        "image 'Debian-12-x86_64' (openstack.image)",
        "InfiniBand network 'roce-provider' (openstack.infiniband_network)",
    ]


def test_quotas_must_cover_the_testbed(plan: Plan) -> None:
    """hpc-access on partner A needs 5 instances and 28 cores (8+4+4+4+8 by flavor)."""
    cloud = StandInCloud()
    cloud.compute["max_total_cores"] = 20
    cloud.volume["maxTotalVolumes"] = 1
    found = problems(cloud, plan)
    assert any(p.startswith("quota for cores: the testbed needs 28, 10 free") for p in found), found
    assert "quota for volumes: the testbed needs 2, 1 free" in found
    with pytest.raises(PreflightError, match="nothing was created"):
        check(cloud, plan)


def test_shared_filesystems_need_block_storage(plan: Plan) -> None:
    """A cloud without a volume service cannot hold hpc-access's shared filesystems; one
    with none to hold (pipelines) is not asked for volume quotas at all."""
    cloud = StandInCloud(block_storage=False)
    assert problems(cloud, plan) == [
        "block storage service (volumes for the shared filesystems /home, /shared)"
    ]
    pipelines = resolve("pipelines", site="partner-a", target="openstack", instance="p-a")
    assert problems(cloud, pipelines) == []


def test_unlimited_quota_is_never_short(plan: Plan) -> None:
    cloud = StandInCloud()
    cloud.compute.update(max_total_cores=-1, max_total_instances=-1, max_total_ram_size=-1)
    assert problems(cloud, plan) == []


def test_gpu_group_without_gpu_flavor_is_an_error_naming_the_field() -> None:
    """A site that cannot place GPU nodes is refused before anything is created."""
    plan = resolve("hpc-access", site="example-openstack", target="openstack")
    assert plan.site.openstack is not None
    site = plan.site.openstack.model_copy(update={"gpu_flavor": None})
    broken = Plan(
        definition=plan.definition,
        site=SiteProfile(name=plan.site.name, openstack=site),
        target=plan.target,
        instance=plan.instance,
        nodes=plan.nodes,
    )
    with pytest.raises(DefinitionError, match=r"openstack\.gpu_flavor: missing: node group 'gpu'"):
        openstack_site(broken)


def test_site_without_openstack_section_is_an_error_naming_the_field() -> None:
    plan = resolve("hpc-access", site="local", target="openstack")
    with pytest.raises(DefinitionError, match=r"local/site.yml: openstack: missing"):
        openstack_site(plan)


def test_an_unknown_cloud_entry_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site naming a clouds.yaml entry that is not there: one line naming the field."""
    (tmp_path / "clouds.yaml").write_text("clouds: {}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    plan = resolve("pipelines", site="partner-a", target="openstack", instance="pf")
    with pytest.raises(PreflightError, match=r"openstack.cloud 'partner-a': no such entry"):
        check_site_cloud(plan)
