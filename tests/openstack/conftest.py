"""The real OpenStack control plane (tests/openstack/cloud.py), started once per test run
for every test here and removed at the end, with what a site's cloud would already have:
the flavors, image and networks the partner-a site profile names. Each test gets a project
of its own with a user of role `member`, the way an operator's account would be."""

from __future__ import annotations

import io
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from openstack.connection import Connection

from tests.e2e.live import require_podman
from tests.openstack import cloud

# The flavors of the partner-a profile, with extra specs a site sets; the GPU flavor asks
# for a trait the fake compute host is given, as a site's GPU hosts would carry it.
GPU_TRAIT = "CUSTOM_WP5_GPU_A100"
FLAVORS = {
    "c4.m16": (4, 16384, 20, {"hw:cpu_sockets": "1", "quota:cpu_shares": "1024"}),
    "c8.m32": (8, 32768, 40, {"hw:cpu_sockets": "1"}),
    "g8.m64.a100x2": (8, 65536, 80, {f"trait:{GPU_TRAIT}": "required"}),
}
IMAGE = "Debian-12-x86_64"
EXTERNAL_NETWORK = "ext-net"
FABRIC_NETWORK = "roce-provider"


@dataclass(frozen=True)
class SiteCloud:
    """The control plane with the site's shared things in it."""

    plane: cloud.ControlPlane
    admin: Connection


@dataclass(frozen=True)
class Project:
    """A project with one member user, and that user's connection."""

    id: str
    name: str
    user_id: str
    password: str = field(repr=False)
    connection: Connection


@pytest.fixture(scope="session")
def control_plane() -> Iterator[cloud.ControlPlane]:
    require_podman()
    by_hand = cloud.started_by_hand()
    if by_hand is not None:
        yield by_hand
        return
    started = time.monotonic()
    plane = cloud.start()
    print(f"openstack control plane up in {time.monotonic() - started:.0f}s")
    try:
        yield plane
    finally:
        cloud.stop(plane)


def _add_gpu_trait(admin: Connection, provider_id: str) -> None:
    """The GPU trait among the provider's (read and written at its current generation)."""
    url = f"/resource_providers/{provider_id}/traits"
    held = admin.placement.get(url, microversion="1.6").json()
    admin.placement.put(
        url,
        json={
            "traits": sorted({*held["traits"], GPU_TRAIT}),
            "resource_provider_generation": held["resource_provider_generation"],
        },
        microversion="1.6",
    ).raise_for_status()


@pytest.fixture(scope="session")
def site_cloud(control_plane: cloud.ControlPlane) -> SiteCloud:
    admin = control_plane.admin_connection()
    assert isinstance(admin, Connection)
    for name, (vcpus, ram, disk, specs) in FLAVORS.items():
        flavor = admin.compute.find_flavor(name) or admin.compute.create_flavor(
            name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True
        )
        admin.compute.create_flavor_extra_specs(flavor, specs)
    cloud.resent_on_reset(lambda: admin.placement.create_trait(GPU_TRAIT))
    for provider in admin.placement.resource_providers():
        cloud.resent_on_reset(lambda held_by=provider.id: _add_gpu_trait(admin, held_by))
    if admin.image.find_image(IMAGE) is None:
        admin.image.create_image(
            name=IMAGE, data=io.BytesIO(b"\0" * 4096), disk_format="raw",
            container_format="bare", visibility="public", wait=True,
        )  # fmt: skip
    # The site's provider networks: (name, external, shared, VLAN, subnet).
    for name, external, shared, segment, cidr in (
        (EXTERNAL_NETWORK, True, False, 100, "203.0.113.0/24"),
        (FABRIC_NETWORK, False, True, 101, "10.99.0.0/24"),
    ):
        if admin.network.find_network(name) is None:
            network = admin.network.create_network(
                name=name, is_router_external=external, is_shared=shared,
                provider_network_type="vlan", provider_physical_network="physnet1",
                provider_segmentation_id=segment,
            )  # fmt: skip
            admin.network.create_subnet(
                network_id=network.id, cidr=cidr, ip_version=4, enable_dhcp=False
            )
    return SiteCloud(control_plane, admin)


def new_project(site: SiteCloud, unlimited: bool = True) -> Project:
    """A project and a member user, quotas lifted where a testbed needs more than the
    defaults (a composed testbed has 21 security groups and 14 servers)."""
    admin = site.admin
    name = f"tb-{secrets.token_hex(3)}"
    project = admin.identity.create_project(name=name, domain_id="default")
    password = secrets.token_urlsafe(18)
    user = admin.identity.create_user(
        name=name, password=password, domain_id="default", default_project_id=project.id
    )
    admin.identity.assign_project_role_to_user(project, user, admin.identity.find_role("member"))
    if unlimited:
        admin.compute.update_quota_set(
            project.id, instances=-1, cores=-1, ram=-1, key_pairs=-1, server_groups=-1,
            server_group_members=-1,
        )  # fmt: skip
        admin.network.update_quota(
            project.id, networks=-1, subnets=-1, ports=-1, routers=-1, floating_ips=-1,
            security_groups=-1, security_group_rules=-1,
        )  # fmt: skip
    return Project(project.id, name, user.id, password, site.plane.connect(name, password, name))


def remove_project(site: SiteCloud, project: Project) -> None:
    site.admin.identity.delete_user(project.user_id, ignore_missing=True)
    site.admin.identity.delete_project(project.id, ignore_missing=True)


@pytest.fixture
def project(site_cloud: SiteCloud) -> Iterator[Project]:
    made = new_project(site_cloud)
    try:
        yield made
    finally:
        remove_project(site_cloud, made)


@pytest.fixture(scope="session")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    key = Path(tmp_path_factory.mktemp("openstack-key")) / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()
