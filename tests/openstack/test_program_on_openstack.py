"""Every resource the OpenStack program declares, for every shipped testbed and the composed
one, made in a real OpenStack (Keystone, Neutron, Nova, Glance, Placement; see cloud.py for
what is not real) as the testbed project's own member user, read back and compared with
what the program meant, then deleted in reverse order until the project is empty."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import pytest
from openstack.connection import Connection

from testbeds.model.loader import available_definitions
from testbeds.model.plan import Plan, resolve
from tests.openstack.conftest import Project, SiteCloud
from tests.openstack.replay import (
    NETWORK,
    NOT_HERE,
    PORT,
    SECURITY_GROUP,
    SERVER_GROUP,
    SUBNET,
    Declared,
    Replay,
    declared_resources,
)

SITE = "partner-a"
Rule = tuple[str, str, str | None, int | None, int | None, str | None, str | None]


def rule_of(rule: Any) -> Rule:
    return (
        rule.direction, rule.ether_type, rule.protocol, rule.port_range_min,
        rule.port_range_max, rule.remote_ip_prefix, rule.remote_group_id,
    )  # fmt: skip


def declared_rule(replay: Replay, inputs: dict[str, Any]) -> Rule:
    remote = inputs.get("remoteGroupId")
    return (
        inputs["direction"], inputs["ethertype"], inputs.get("protocol"),
        inputs.get("portRangeMin"), inputs.get("portRangeMax"), inputs.get("remoteIpPrefix"),
        replay.ref(remote, SECURITY_GROUP) if remote else None,
    )  # fmt: skip


def compare_security_groups(replay: Replay, declared: list[Declared]) -> None:
    """Each group's rules in Neutron are exactly the declared ones (plus Neutron's default
    egress rules, which the program keeps)."""
    net = replay.cloud.network
    meant: dict[str, Counter[Rule]] = {}
    for resource in declared:
        if resource.type.endswith("secGroup:SecGroup"):
            meant[replay.ids[(resource.type, resource.name)]] = Counter()
    for resource in declared:
        if resource.type.endswith("secGroupRule:SecGroupRule"):
            group = replay.ref(resource.inputs["securityGroupId"], SECURITY_GROUP)
            meant[group][declared_rule(replay, resource.inputs)] += 1
    for group_id, rules in meant.items():
        found = Counter(
            rule_of(r)
            for r in net.security_group_rules(security_group_id=group_id)
            if r.direction == "ingress"
        )
        assert found == rules, f"security group {net.get_security_group(group_id).name}"


def compare_links(replay: Replay, plan: Plan) -> None:
    """Between a composed testbed's parts, the rules Neutron holds on each `-links` group
    admit exactly the declared links: their source groups, protocols and ports."""
    name_of = {real: name for (_, name), real in replay.ids.items()}
    prefix = f"{plan.instance}-"
    found = set()
    for record in replay.made:
        if record.declared.type.endswith("secGroup:SecGroup") and record.declared.name.endswith(
            "-links"
        ):
            target = record.declared.name[len(prefix) : -len("-links")]
            for rule in replay.cloud.network.security_group_rules(security_group_id=record.made.id):
                if rule.direction != "ingress":
                    continue
                source = name_of[rule.remote_group_id][len(prefix) : -len("-members")]
                found.add((source, target, rule.protocol, rule.port_range_min))
    meant = {
        (source, link.to, port.protocol, port.port)
        for link in plan.definition.links
        for source in link.sources
        for port in link.ports
    }
    assert meant, "the composed testbed declares links"
    assert found == meant


def compare_ports(replay: Replay) -> None:
    net = replay.cloud.network
    for record in replay.made:
        if not record.declared.type.endswith("port:Port"):
            continue
        inputs, port = record.declared.inputs, net.get_port(record.made.id)
        where = f"port {record.declared.name}"
        assert port.network_id == replay.ref(inputs["networkId"], NETWORK), where
        groups = [] if inputs.get("noSecurityGroups") else inputs.get("securityGroupIds")
        if groups is not None:
            assert sorted(port.security_group_ids) == sorted(
                replay.ref(g, SECURITY_GROUP) for g in groups
            ), where
        assert port.binding_vnic_type == inputs.get("binding", {}).get("vnicType", "normal"), where
        assert port.is_port_security_enabled is inputs.get("portSecurityEnabled", True), where
        assert port.status in ("ACTIVE", "DOWN"), where


def compare_servers(replay: Replay, admin: Connection, settled: dict[str, Any]) -> None:
    """Each server as Nova holds it, ACTIVE: flavor, image, key, metadata, user_data, its
    ports, its server group; a server with an SR-IOV port has it bound to one of the fake
    PCI virtual functions."""
    for name, server in settled.items():
        inputs = replay.by_name[name].declared.inputs
        assert server.status == "ACTIVE", (name, server.fault)
        seen = admin.compute.get_server(server.id)
        assert seen.name == inputs["name"]
        assert seen.flavor.original_name == inputs["flavorName"]
        assert seen.image.id == admin.image.find_image(inputs["imageName"]).id
        assert seen.key_name.startswith(f"{inputs['keyPair']}-")
        assert seen.metadata == inputs["metadata"]
        assert base64.b64decode(seen.user_data).decode() == inputs["userData"]
        attached = {p.id for p in replay.cloud.network.ports(device_id=server.id)}
        assert attached == {replay.ref(n["port"], PORT) for n in inputs["networks"]}, name
        (hint,) = inputs["schedulerHints"]
        group = replay.cloud.compute.get_server_group(replay.ref(hint["group"], SERVER_GROUP))
        assert server.id in group.member_ids, name
        if name in replay.on_sriov:
            direct = [
                p for p in replay.cloud.network.ports(device_id=server.id)
                if p.binding_vnic_type == "direct"
            ]  # fmt: skip
            assert direct, name
            profile = site_port_profile(admin, direct[0].id)
            assert profile.get("pci_slot"), (name, profile)
            assert profile.get("physical_network") == "physnet1", (name, profile)


def site_port_profile(admin: Connection, port_id: str) -> dict[str, Any]:
    """A port's binding profile, which only an administrator reads."""
    return dict(admin.network.get_port(port_id).binding_profile or {})


def compare_access(replay: Replay, plan: Plan) -> None:
    net = replay.cloud.network
    (floating,) = list(net.ips(project_id=replay.cloud.current_project_id))
    assert floating.port_id == replay.ref(f"{plan.instance}-{plan.entry_node().name}-id", PORT)
    (router,) = list(net.routers(project_id=replay.cloud.current_project_id))
    assert router.external_gateway_info["network_id"] == net.find_network("ext-net").id
    (interface,) = list(net.ports(device_id=router.id, device_owner="network:router_interface"))
    assert interface.fixed_ips[0]["subnet_id"] == replay.ref(f"{plan.instance}-subnet-id", SUBNET)


def leftovers(cloud: Connection) -> list[str]:
    """What the project still holds, besides the default security group Neutron made."""
    project_id = cloud.current_project_id
    found = [f"server {s.name}" for s in cloud.compute.servers()]
    found += [f"keypair {k.name}" for k in cloud.compute.keypairs()]
    found += [f"server group {g.name}" for g in cloud.compute.server_groups()]
    net = cloud.network
    for kind, listing in (
        ("network", net.networks(project_id=project_id)),
        ("subnet", net.subnets(project_id=project_id)),
        ("router", net.routers(project_id=project_id)),
        ("port", net.ports(project_id=project_id)),
        ("floating IP", net.ips(project_id=project_id)),
        ("security group", net.security_groups(project_id=project_id)),
    ):
        found += [f"{kind} {getattr(r, 'name', '') or r.id}" for r in listing]
    return [f for f in found if f != "security group default"]


@pytest.mark.parametrize("definition", available_definitions())
def test_every_declared_resource_is_accepted_by_the_real_services(
    definition: str, site_cloud: SiteCloud, project: Project, public_key: str
) -> None:
    plan = resolve(definition, site=SITE, target="openstack", instance=f"os-{project.name[3:]}")
    declared = declared_resources(plan, public_key)
    replay = Replay(project.connection)
    try:
        for resource in declared:
            replay.create(resource)
        settled = replay.wait_for_servers()
        compare_security_groups(replay, declared)
        compare_ports(replay)
        compare_servers(replay, site_cloud.admin, settled)
        compare_access(replay, plan)
        if plan.definition.include:
            compare_links(replay, plan)
    finally:
        undeleted = replay.delete_all()
    assert undeleted == []
    assert leftovers(project.connection) == []
    kinds = Counter(r.type.rsplit(":", 1)[-1] for r in declared if r.type not in NOT_HERE)
    print(f"{definition}: made, compared and deleted {dict(kinds)}")


NOVA_USER_DATA_LIMIT = 65535  # bytes of base64, the API's schema


def test_the_largest_user_data_fits_and_nova_enforces_the_limit(
    site_cloud: SiteCloud, project: Project, public_key: str
) -> None:
    """The largest node's user_data of every shipped testbed is far inside Nova's limit (the
    replay above has Nova take each one), and the limit is real: one byte over is refused."""
    from openstack.exceptions import BadRequestException

    largest = max(
        (
            len(base64.b64encode(r.inputs["userData"].encode())),
            definition,
            r.name,
        )
        for definition in available_definitions()
        for r in declared_resources(
            resolve(definition, site=SITE, target="openstack", instance="ud"), public_key
        )
        if r.type.endswith("instance:Instance")
    )
    print(f"largest user_data: {largest[0]} bytes of base64 ({largest[1]}, {largest[2]})")
    assert largest[0] <= NOVA_USER_DATA_LIMIT // 8
    cloud = project.connection
    flavor = cloud.compute.find_flavor("c4.m16", ignore_missing=False)
    image = cloud.image.find_image("Debian-12-x86_64", ignore_missing=False)
    oversized = "A" * (NOVA_USER_DATA_LIMIT + 1)
    with pytest.raises(BadRequestException, match="user_data"):
        cloud.compute.create_server(
            name="ud-too-big", flavor_id=flavor.id, image_id=image.id, networks="none",
            user_data=oversized,
        )  # fmt: skip
