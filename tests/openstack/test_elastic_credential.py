"""The application credential elastic nodes are resumed and suspended with
(testbeds/targets/openstack/credentials.py), against the real Keystone, Nova and Neutron: it
creates, reads and deletes a server in its own project, and Keystone refuses everything
else: another request (a network listing), a scope on another project, a new credential."""

from __future__ import annotations

import pytest
import requests
from openstack.exceptions import HttpException

from testbeds.targets.openstack.credentials import mint_elastic_credential
from tests.openstack.conftest import IMAGE, Project, SiteCloud, new_project, remove_project


def test_the_elastic_credential_reaches_only_servers_of_its_project(
    site_cloud: SiteCloud, project: Project
) -> None:
    owner = project.connection
    minted = mint_elastic_credential(owner, "el1")
    assert minted.project_id == project.id
    network = owner.network.create_network(name="el1-net")
    owner.network.create_subnet(network_id=network.id, cidr="10.70.0.0/24", ip_version=4)
    elastic = site_cloud.plane.connect_credential(minted.id, minted.secret)
    other = new_project(site_cloud)
    try:
        assert elastic.current_project_id == project.id
        flavor = site_cloud.admin.compute.find_flavor("c4.m16", ignore_missing=False)
        image = site_cloud.admin.image.find_image(IMAGE, ignore_missing=False)
        assert elastic.compute.get_flavor(flavor.id).name == "c4.m16"
        server = elastic.compute.create_server(
            name="el1-cpu3", flavor_id=flavor.id, image_id=image.id,
            networks=[{"uuid": network.id}],
        )  # fmt: skip
        active = elastic.compute.wait_for_server(server, failures=["ERROR"], interval=1, wait=120)
        assert active.status == "ACTIVE"
        elastic.compute.delete_server(server)
        elastic.compute.wait_for_delete(server, interval=1, wait=120)

        # Outside its access rules: refused by keystonemiddleware with Keystone's rules.
        with pytest.raises(HttpException) as listing:
            list(elastic.network.networks())
        assert listing.value.status_code in (401, 403)
        # A restricted credential makes no credentials.
        with pytest.raises(HttpException) as minting:
            elastic.identity.create_application_credential(
                elastic.current_user_id, name="el1-more", roles=[{"name": "member"}]
            )
        assert minting.value.status_code in (401, 403)
        # No token for any other project.
        scoped = requests.post(
            f"{site_cloud.plane.auth_url}/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["application_credential"],
                        "application_credential": {"id": minted.id, "secret": minted.secret},
                    },
                    "scope": {"project": {"id": other.id}},
                }
            },
            timeout=30,
        )
        assert scoped.status_code == 401, scoped.text
    finally:
        remove_project(site_cloud, other)
        for server in owner.compute.servers():
            owner.compute.delete_server(server)
            owner.compute.wait_for_delete(server, interval=1, wait=120)
        owner.network.delete_network(network)
        owner.identity.delete_application_credential(owner.current_user_id, minted.id)
