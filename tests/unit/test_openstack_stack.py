"""The OpenStack Pulumi component under Pulumi's mocks (no Pulumi CLI or cloud here): the
resources a testbed gets, the policies its security groups follow, and the inventory it
returns in the same shape as the local target's nodes."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from testbeds.cloud_configuration import needs_configuring, tree_hash
from testbeds.model.plan import Plan, resolve
from testbeds.targets.cloud.access import CloudNode
from testbeds.targets.cloud.offline import RecordingMocks
from testbeds.targets.openstack.program import OpenStackTestbed, OpenStackTestbedArgs
from testbeds.targets.openstack.site import openstack_site

FLOATING_IP = "192.0.2.10"


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    recorder = RecordingMocks()
    pulumi.runtime.set_mocks(
        recorder, project="wp5-testbeds-openstack", stack="unit", preview=False
    )
    yield recorder


def build(plan: Plan) -> OpenStackTestbed:
    return OpenStackTestbed(
        plan.instance,
        OpenStackTestbedArgs(plan=plan, site=openstack_site(plan), public_key="ssh-ed25519 AAAA"),
    )


def settle(output: Any) -> Any:
    """Wait for an output's value (the mocks resolve everything in this process)."""
    holder: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[misc]
    def check() -> Any:
        return output.apply(lambda value: holder.setdefault("value", value))

    check()
    return holder["value"]


@pytest.fixture
def partner_a(mocks: RecordingMocks) -> tuple[RecordingMocks, OpenStackTestbed, Plan]:
    plan = resolve("hpc-access", site="partner-a", target="openstack", instance="hpc-a")
    return mocks, build(plan), plan


def test_one_instance_per_node_with_the_sites_flavors(partner_a: Any) -> None:
    """Every node is an instance; GPU groups get the GPU flavor, groups listed in flavors
    theirs, the rest the default flavor; all boot the site's image."""
    mocks, testbed, plan = partner_a
    settle(testbed.nodes)
    instances = {state["name"]: state for _, state in mocks.of_type("compute/instance:Instance")}
    assert sorted(instances) == sorted(f"hpc-a-{n.name}" for n in plan.nodes)
    assert instances["hpc-a-gpu"]["flavorName"] == "g8.m64.a100x2"
    assert instances["hpc-a-controller"]["flavorName"] == "c8.m32"
    assert instances["hpc-a-cpu1"]["flavorName"] == "c4.m16"
    assert {s["imageName"] for s in instances.values()} == {"Debian-12-x86_64"}
    assert all(s["userData"].startswith("#cloud-config") for s in instances.values())


def test_infiniband_nodes_get_a_port_on_the_fabric(partner_a: Any) -> None:
    """InfiniBand groups get a second port on the site's RoCE network with its vnic type."""
    mocks, testbed, _ = partner_a
    settle(testbed.nodes)
    ib_ports = {name: state for name, state in mocks.of_type("port:Port") if name.endswith("-ib")}
    assert sorted(ib_ports) == ["hpc-a-cpu1-ib", "hpc-a-cpu2-ib"]
    for state in ib_ports.values():
        assert state["networkId"] == "net-roce-provider"
        assert state["binding"]["vnicType"] == "direct"
        # SR-IOV: Neutron cannot filter it, so it has no security group; port security is
        # the provider network's, which only its owner may change (Neutron's policy)
        assert state["noSecurityGroups"] is True
        assert "securityGroupIds" not in state
        assert "portSecurityEnabled" not in state


def test_a_filterable_fabric_port_admits_only_the_testbed(mocks: RecordingMocks) -> None:
    """Where the vNIC type lets Neutron filter (normal, macvtap), the fabric port keeps port
    security, with the internal group that admits only the testbed's own nodes."""
    from dataclasses import replace

    plan = resolve("hpc-access", site="partner-a", target="openstack", instance="hpc-n")
    site = plan.site.openstack.model_copy(update={"infiniband_vnic_type": "normal"})  # type: ignore[union-attr]
    plan = replace(plan, site=plan.site.model_copy(update={"openstack": site}))
    settle(build(plan).nodes)
    ib_ports = [state for name, state in mocks.of_type("port:Port") if name.endswith("-ib")]
    (internal,) = [
        name for name, _ in mocks.of_type("networking/secGroup:SecGroup") if "internal" in name
    ]
    assert ib_ports
    for state in ib_ports:
        assert "portSecurityEnabled" not in state  # the network's, as the site set it
        assert state["noSecurityGroups"] is False
        assert state["securityGroupIds"] == [f"{internal}-id"]


def test_ssh_only_to_the_entry_node_and_only_from_allowed_networks(partner_a: Any) -> None:
    """No rule opens SSH (or anything) to the world; SSH rules allow only the site's CIDRs
    and only the entry node's port carries the SSH group."""
    mocks, testbed, plan = partner_a
    settle(testbed.nodes)
    rules = [state for _, state in mocks.of_type("secGroupRule:SecGroupRule")]
    assert all(r.get("remoteIpPrefix") not in ("0.0.0.0/0", "::/0") for r in rules)
    ssh_rules = [r for r in rules if r.get("portRangeMin") == 22]
    assert {r["remoteIpPrefix"] for r in ssh_rules} == set(plan.site.openstack.allowed_ssh_cidrs)
    ports = {name: state for name, state in mocks.of_type("port:Port")}
    with_ssh = [
        name for name, state in ports.items() if "hpc-a-ssh-id" in state.get("securityGroupIds", [])
    ]
    assert with_ssh == [f"hpc-a-{plan.entry_node().name}"]


def test_internal_traffic_only_between_members(partner_a: Any) -> None:
    """The internal group admits traffic only from its own members."""
    mocks, testbed, _ = partner_a
    settle(testbed.nodes)
    internal = [
        s for n, s in mocks.of_type("secGroupRule:SecGroupRule") if n.startswith("hpc-a-internal")
    ]
    assert len(internal) == 2
    assert all(r["remoteGroupId"] == "hpc-a-internal-id" for r in internal)


def test_volumes_for_shared_filesystems_on_their_server(partner_a: Any) -> None:
    """Each shared filesystem is a volume attached to the node of its server group."""
    mocks, testbed, plan = partner_a
    settle(testbed.nodes)
    volumes = dict(mocks.of_type("volume:Volume"))
    assert sorted(volumes) == ["hpc-a-home", "hpc-a-shared"]
    assert {v["volumeType"] for v in volumes.values()} == {"ceph-ssd"}
    attachments = [s for _, s in mocks.of_type("volumeAttach:VolumeAttach")]
    assert {a["instanceId"] for a in attachments} == {"hpc-a-controller-id"}


def test_exported_nodes_are_cloud_nodes(partner_a: Any) -> None:
    """The exported nodes load as CloudNode records, each with its fixed address and its
    server's id (by which the control node reads the host key from the console); one is the
    entry node, whose floating IP is the stack's entry_address."""
    _, testbed, plan = partner_a
    nodes = [CloudNode.from_output(n) for n in settle(testbed.nodes)]
    assert [n.name for n in nodes] == [n.name for n in plan.nodes]
    assert [n.name for n in nodes if n.entry] == [plan.entry_node().name]
    assert settle(testbed.entry_address) == FLOATING_IP
    for node in nodes:
        assert node.address.startswith("10.42.0.")
        assert node.server_id == f"hpc-a-{node.name}-id"


def test_no_host_private_key_travels_in_user_data(partner_a: Any) -> None:
    """User data (which any process on a node reads from the metadata service) holds no
    private key: each node makes its own ed25519 host key and prints the public half on its
    console."""
    mocks, testbed, _ = partner_a
    settle(testbed.nodes)
    instances = mocks.of_type("compute/instance:Instance")
    assert instances
    for _, state in instances:
        user_data = yaml.safe_load(state["userData"])
        assert "PRIVATE KEY" not in state["userData"]
        assert "ssh_keys" not in user_data
        assert (user_data["ssh_deletekeys"], user_data["ssh_genkeytypes"]) == (True, ["ed25519"])
        assert user_data["ssh"]["emit_keys_to_console"] is True
    made_keys = [name for name, _ in mocks.of_type("index/privateKey:PrivateKey")]
    assert not [name for name in made_keys if name.endswith("-host")], made_keys


def test_site_without_fabric_builds_no_fabric_ports(mocks: RecordingMocks) -> None:
    """Partner B has no IB network: InfiniBand groups get only their testbed port."""
    plan = resolve("hpc-access", site="partner-b", target="openstack", instance="hpc-b")
    settle(build(plan).nodes)
    assert not [name for name, _ in mocks.of_type("port:Port") if name.endswith("-ib")]


def test_program_configures_after_the_instances_exist(mocks: RecordingMocks) -> None:
    """The stack's program, run as `pulumi up` would (config from the stack), creates the
    key and munge secrets, the instances, and then the configure step, fed the nodes and
    the hashes that trigger it again when the definition, site or roles change."""
    pulumi.runtime.set_all_config(
        {
            "wp5-testbeds-openstack:testbed": "data-movement",
            "wp5-testbeds-openstack:site": "partner-b",
            "wp5-testbeds-openstack:instance": "dm-b",
        }
    )
    program = Path(__file__).resolve().parents[2] / "stacks" / "openstack" / "__main__.py"

    @pulumi.runtime.test  # type: ignore[misc]
    def run() -> None:
        runpy.run_path(str(program), run_name="__main__")

    run()
    settle(pulumi.Output.from_input(None))
    types = [typ for typ, _, _ in mocks.resources]
    assert "tls:index/privateKey:PrivateKey" in types
    assert "random:index/randomBytes:RandomBytes" in types
    assert types.count("openstack:compute/instance:Instance") == 5
    configure = [
        state for typ, _, state in mocks.resources if typ.startswith("pulumi-python:dynamic")
    ]
    assert len(configure) == 1
    inputs = configure[0]
    assert {"definition_hash", "site_hash", "roles_hash"} <= set(inputs)
    assert [n["name"] for n in inputs["nodes"]] == ["site1", "site2", "hpc", "ddm", "client"]


def test_changed_roles_trigger_reconfiguration(tmp_path: Path) -> None:
    """A changed file under the roles changes the hash the configure step is keyed on."""
    (tmp_path / "tasks").mkdir()
    task = tmp_path / "tasks" / "main.yml"
    task.write_text("- name: one\n")
    before = tree_hash(tmp_path)
    task.write_text("- name: two\n")
    after = tree_hash(tmp_path)
    assert before != after
    assert needs_configuring({"roles_hash": before}, {"roles_hash": after}) == ["roles_hash"]
    assert needs_configuring({"roles_hash": after}, {"roles_hash": after}) == []


def test_identity_services_are_open_only_to_the_testbeds_nodes(partner_a: Any) -> None:
    """The directory (ldaps:// 636) and the token issuer (HTTPS 4593) on the controller are
    reached only through the internal group, whose rules admit its members and no
    network; the controller's port carries that group."""
    mocks, testbed, _ = partner_a
    settle(testbed.nodes)
    rules = [state for _, state in mocks.of_type("secGroupRule:SecGroupRule")]

    def admits(rule: dict[str, Any], port: int) -> bool:
        low, high = rule.get("portRangeMin"), rule.get("portRangeMax")
        return low is None or low <= port <= (high if high is not None else low)

    for port in (636, 4593):
        admitting = [r for r in rules if r.get("direction") == "ingress" and admits(r, port)]
        assert admitting, f"nothing admits port {port}: the identity layer is unreachable"
        assert all(
            r.get("remoteGroupId") == "hpc-a-internal-id" and not r.get("remoteIpPrefix")
            for r in admitting
        ), (port, admitting)
    ports = dict(mocks.of_type("port:Port"))
    holders = [n for n, s in ports.items() if "hpc-a-internal-id" in s.get("securityGroupIds", [])]
    assert "hpc-a-controller" in holders, holders


def test_exposed_ports_only_where_the_definition_exposes_them(partner_a: Any) -> None:
    """JupyterHub's port is open on the login node only, and only from the site's service
    networks; no other node gets a service group."""
    mocks, testbed, plan = partner_a
    settle(testbed.nodes)
    service_rules = [
        state
        for name, state in mocks.of_type("secGroupRule:SecGroupRule")
        if "-services" not in name and name.startswith("hpc-a-login-")
    ]
    assert [(r["portRangeMin"], r["remoteIpPrefix"]) for r in service_rules] == [
        (8000, "198.51.100.0/24")
    ]
    ports = dict(mocks.of_type("port:Port"))
    with_services = sorted(
        name
        for name, state in ports.items()
        if any(g.endswith("-services-id") for g in state.get("securityGroupIds", []))
    )
    assert with_services == ["hpc-a-login"]


def test_each_concern_is_a_component(partner_a: Any) -> None:
    """The testbed is made of one component per concern, each holding its resources."""
    mocks, testbed, _ = partner_a
    settle(testbed.nodes)
    kinds = [typ for typ, _, _ in mocks.resources if typ.startswith("testbeds:openstack:")]
    assert sorted(kinds) == sorted(
        f"testbeds:openstack:{kind}"
        for kind in ("Testbed", "Network", "Security", "Compute", "Storage", "Access")
    )


def test_composed_testbed_is_one_stack_with_only_its_declared_ports(mocks: RecordingMocks) -> None:
    """research-infrastructure builds as one stack: every node of the included testbeds and
    of the composition on one network, and service ports open only where a group exposes one
    (the hub on login, Rucio's API on ddm, git, the registry, MLflow and Buildbot's worker
    port on pipelines' service node)."""
    plan = resolve("research-infrastructure", site="partner-a", target="openstack", instance="ri")
    testbed = build(plan)
    nodes = [CloudNode.from_output(n) for n in settle(testbed.nodes)]
    assert [n.name for n in nodes] == [n.name for n in plan.nodes]
    assert {"controller", "cpu2", "site1", "ddm", "client", "hpc"} <= {n.name for n in nodes}
    assert len({n.address for n in nodes}) == len(nodes)
    assert all(n.address.startswith("10.42.0.") for n in nodes)
    assert len(mocks.of_type("network:Network")) == 1
    rules = [s for _, s in mocks.of_type("secGroupRule:SecGroupRule")]
    assert all(r.get("remoteIpPrefix") not in ("0.0.0.0/0", "::/0") for r in rules)
    exposed = sorted(
        (name.split("-")[1], state["portRangeMin"])
        for name, state in mocks.of_type("secGroupRule:SecGroupRule")
        if state.get("remoteIpPrefix") and state.get("portRangeMin") != 22
    )
    assert exposed == [
        ("ddm", 443),
        ("login", 8000),
        ("service", 443),
        ("service", 5000),
        ("service", 5001),
        ("service", 9989),
    ]


def test_composed_testbeds_reach_each_other_only_through_their_links(
    mocks: RecordingMocks,
) -> None:
    """Each included testbed's nodes reach each other (a group per testbed); across
    testbeds a rule admits exactly each declared link's ports from its source groups, and
    SSH from the entry node (the control node's way in); nothing else."""
    plan = resolve("research-infrastructure", site="partner-a", target="openstack", instance="ri")
    settle(build(plan).nodes)
    definition = plan.definition
    ports = dict(mocks.of_type("port:Port"))
    for node in plan.nodes:
        held = ports[f"ri-{node.name}"]["securityGroupIds"]
        internal = [g for g in held if g.startswith("ri-internal-")]
        assert internal == [f"ri-internal-{definition.origin(node.group)}-id"], (node.name, held)
    declared = {
        (link.to, source, port.port)
        for link in definition.links
        for source in link.sources
        for port in link.ports
    }
    across = {
        (state["securityGroupId"], state["remoteGroupId"], state.get("portRangeMin"))
        for state in (s for _, s in mocks.of_type("secGroupRule:SecGroupRule"))
        if state.get("remoteGroupId") and not state["remoteGroupId"].startswith("ri-internal-")
    }
    entry = plan.entry_node().group
    ssh = {
        (f"ri-internal-{origin}-id", f"ri-{entry}-members-id", 22)
        for origin in ("data-movement", "pipelines", "research-infrastructure")
    }
    assert across == ssh | {
        (f"ri-{to}-links-id", f"ri-{source}-members-id", port) for to, source, port in declared
    }
    # A link's target holds its links group, a source its members group; across testbeds
    # the directory (636) is open only to the nodes that check its passwords or resolve its
    # accounts: pipelines' service node and the CI gateway.
    assert "ri-controller-links-id" in ports["ri-controller"]["securityGroupIds"]
    assert "ri-site-members-id" in ports["ri-site1"]["securityGroupIds"]
    directory_readers = {source for _, source, port in declared if port == 636}
    assert directory_readers == {"service", "gateway"}


def test_elastic_nodes_get_no_instance_and_their_group_is_handed_on(partner_a: Any) -> None:
    """hpc-access's elastic nodes are not the program's: no instance or port of theirs; the
    group's flavor and image (by id), network, security groups (a compute node's, no SSH),
    key pair and server group are exported for the node broker that makes them."""
    mocks, testbed, plan = partner_a
    settle(testbed.nodes)
    names = {state["name"] for _, state in mocks.of_type("compute/instance:Instance")}
    assert not any(n.startswith("hpc-a-elastic") for n in names)
    assert not any("elastic" in name for name, _ in mocks.of_type("port:Port"))
    spec = {key: settle(value) for key, value in testbed.elastic_groups["elastic"].items()}
    assert set(testbed.elastic_groups) == {"elastic"}
    assert spec["flavor_id"] == "flavor-c4.m16"
    assert spec["image_id"] == "image-Debian-12-x86_64"
    assert spec["network_id"] and spec["key_name"] and spec["server_group_id"]
    cpu_ports = dict(mocks.of_type("port:Port"))["hpc-a-cpu1"]
    assert sorted(spec["security_group_ids"]) == sorted(cpu_ports["securityGroupIds"])
