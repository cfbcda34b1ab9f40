"""The OpenStack pre-flight against the real services, through a clouds.yaml entry as an
operator's would be: with everything the site names present it passes (but for block
storage, which this control plane does not run), and each thing removed in turn, or a
quota cut, is named on a line of its own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from testbeds.errors import PreflightError
from testbeds.model.plan import Plan, resolve
from testbeds.targets.openstack.preflight import check_site_cloud, problems
from tests.openstack.conftest import Project, SiteCloud

BLOCK_STORAGE = "block storage service (volumes for the shared filesystems /home, /shared)"


def clouds_yaml(path: Path, site: SiteCloud, project: Project) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "wp5-test": {
                        "auth": {
                            "auth_url": site.plane.auth_url,
                            "username": project.name,
                            "password": project.password,
                            "project_name": project.name,
                            "user_domain_name": "Default",
                            "project_domain_name": "Default",
                        },
                        "region_name": "regionOne",
                    }
                }
            }
        )
    )
    path.chmod(0o600)
    return path


def with_site(plan: Plan, **fields: object) -> Plan:
    from dataclasses import replace

    assert plan.site.openstack is not None
    site = plan.site.openstack.model_copy(update=fields)
    return replace(plan, site=plan.site.model_copy(update={"openstack": site}))


def test_each_missing_thing_and_short_quota_is_named(
    site_cloud: SiteCloud, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, tag = site_cloud.admin, project.name
    # The site's things made for this test alone, so removing them touches no other test.
    flavors = {f"{tag}-c4": (4, 16384), f"{tag}-c8": (8, 32768), f"{tag}-gpu": (8, 65536)}
    made_flavors = {
        name: admin.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=20)
        for name, (vcpus, ram) in flavors.items()
    }
    image = project.connection.image.create_image(
        name=f"{tag}-image", data=io.BytesIO(b"\0" * 1024), disk_format="raw",
        container_format="bare", wait=True,
    )  # fmt: skip
    networks = {
        kind: admin.network.create_network(
            name=f"{tag}-{kind}",
            is_router_external=kind == "ext",
            is_shared=kind == "fabric",
            provider_network_type="vlan",
            provider_physical_network="physnet1",
            provider_segmentation_id=segment,
        )  # fmt: skip
        for kind, segment in (("ext", 150), ("fabric", 151))
    }
    plan = with_site(
        resolve("hpc-access", site="partner-a", target="openstack", instance="pf"),
        cloud="wp5-test", flavor=f"{tag}-c4", flavors={"controller": f"{tag}-c8"},
        gpu_flavor=f"{tag}-gpu", image=f"{tag}-image", external_network=f"{tag}-ext",
        infiniband_network=f"{tag}-fabric",
    )  # fmt: skip
    monkeypatch.setenv(
        "OS_CLIENT_CONFIG_FILE", str(clouds_yaml(tmp_path / "clouds.yaml", site_cloud, project))
    )
    cloud = project.connection
    try:
        assert problems(cloud, plan) == [BLOCK_STORAGE]
        with pytest.raises(PreflightError) as refused:
            check_site_cloud(plan)
        assert "nothing was created" in str(refused.value)
        assert BLOCK_STORAGE in str(refused.value)

        # hpc-access on partner-a's flavors: 5 instances, 28 cores, 144 GiB of RAM.
        for quota, value, line in (
            ("instances", 3, "quota for instances: the testbed needs 5, 3 free"),
            ("cores", 20, "quota for cores: the testbed needs 28, 20 free"),
            ("ram", 65536, "quota for RAM (MB): the testbed needs 147456, 65536 free"),
        ):
            admin.compute.update_quota_set(project.id, **{quota: value})
            assert problems(cloud, plan) == [BLOCK_STORAGE, line], quota
            admin.compute.update_quota_set(project.id, **{quota: -1})

        expected = [BLOCK_STORAGE]
        for removal, line in (
            (lambda: admin.network.delete_network(networks["fabric"]),
             f"InfiniBand network '{tag}-fabric' (openstack.infiniband_network)"),
            (lambda: admin.network.delete_network(networks["ext"]),
             f"external network '{tag}-ext' (openstack.external_network)"),
            (lambda: cloud.image.delete_image(image),
             f"image '{tag}-image' (openstack.image)"),
            (lambda: admin.compute.delete_flavor(made_flavors[f"{tag}-gpu"]),
             f"flavor '{tag}-gpu' (openstack.flavor*)"),
        ):  # fmt: skip
            removal()
            expected.insert(-1, line)
            found = problems(cloud, plan)
            assert sorted(found) == sorted(expected), line
    finally:
        for flavor in made_flavors.values():
            admin.compute.delete_flavor(flavor, ignore_missing=True)
        cloud.image.delete_image(image, ignore_missing=True)
        for network in networks.values():
            admin.network.delete_network(network, ignore_missing=True)
