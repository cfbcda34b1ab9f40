"""Elastic nodes on OpenStack (testbeds/elastic/openstack_nodes.py) against the real Keystone,
Nova and Neutron, with the restricted elastic credential only: resuming two nodes creates
their servers of the group's flavor, image, network and security group (in the project's
server group, with the project's key pair), with the instance's metadata; suspending
deletes exactly them, not a server of the same name someone else made; a deleted server
counts as vanished."""

from __future__ import annotations

import openstack
import pytest

from testbeds.elastic.openstack_nodes import ELASTIC_KEY, INSTANCE_KEY, OpenStackNodes, ServerSpec
from testbeds.targets.openstack.credentials import mint_elastic_credential
from tests.openstack.conftest import IMAGE, Project, SiteCloud

NODES = {"elastic1": "elastic", "elastic2": "elastic"}


def test_resume_creates_and_suspend_deletes_the_servers_with_the_restricted_credential(
    site_cloud: SiteCloud, project: Project, public_key: str
) -> None:
    owner = project.connection
    network = owner.network.create_network(name="el2-net")
    owner.network.create_subnet(network_id=network.id, cidr="10.71.0.0/24", ip_version=4)
    group = owner.network.create_security_group(name="el2-internal")
    keypair = owner.compute.create_keypair(name="el2-key", public_key=public_key)
    server_group = owner.compute.create_server_group(
        name="el2-elastic", policy="soft-anti-affinity"
    )
    minted = mint_elastic_credential(owner, "el2")
    elastic = site_cloud.plane.connect_credential(minted.id, minted.secret)
    spec = ServerSpec(
        flavor_id=site_cloud.admin.compute.find_flavor("c4.m16", ignore_missing=False).id,
        image_id=site_cloud.admin.image.find_image(IMAGE, ignore_missing=False).id,
        network_id=network.id,
        security_group_ids=(group.id,),
        key_name=keypair.name,
        server_group_id=server_group.id,
        user_data="#cloud-config\n{}\n",
    )
    nodes = OpenStackNodes(elastic.compute, "el2", {"elastic": spec}, NODES)
    stranger = None
    try:
        for node in NODES:
            server = nodes.resume(node)
            assert server.status == "ACTIVE"
        servers = {s.name: s for s in owner.compute.servers(details=True)}
        assert sorted(servers) == ["el2-elastic1", "el2-elastic2"]
        for server in servers.values():
            assert server.flavor["original_name"] == "c4.m16"
            assert server.image["id"] == spec.image_id
            assert server.metadata[INSTANCE_KEY] == "el2" and server.metadata[ELASTIC_KEY] == "true"
            assert server.key_name == "el2-key"
            assert {g["name"] for g in server.security_groups} == {"el2-internal"}
        ports = list(owner.network.ports(network_id=network.id, device_owner="compute:nova"))
        assert len(ports) == 2 and all(p.security_group_ids == [group.id] for p in ports)
        members = owner.compute.get_server_group(server_group.id).member_ids
        assert sorted(members) == sorted(s.id for s in servers.values())

        owner.compute.delete_server(servers["el2-elastic2"])
        owner.compute.wait_for_delete(servers["el2-elastic2"], interval=1, wait=120)
        assert nodes.vanished(["elastic1", "elastic2"]) == ["elastic2"]

        # A server of that name the credential did not make is not the node's.
        stranger = owner.compute.create_server(
            name="el2-elastic2", flavor_id=spec.flavor_id, image_id=spec.image_id,
            networks=[{"uuid": network.id}],
        )  # fmt: skip
        owner.compute.wait_for_server(stranger, interval=1, wait=120)
        nodes.remove("elastic1")
        nodes.remove("elastic2")
        left = sorted(s.name for s in owner.compute.servers())
        assert left == ["el2-elastic2"]
        assert owner.compute.get_server(stranger.id).metadata == {}
        # Outside the access rules: the credential lists no networks.
        with pytest.raises(openstack.exceptions.HttpException):
            list(elastic.network.networks())
    finally:
        for server in owner.compute.servers():
            owner.compute.delete_server(server)
            owner.compute.wait_for_delete(server, interval=1, wait=120)
        owner.compute.delete_server_group(server_group)
        owner.compute.delete_keypair(keypair)
        owner.network.delete_security_group(group)
        owner.network.delete_network(network)
        owner.identity.delete_application_credential(owner.current_user_id, minted.id)
