"""The OpenStack program's resources created in a real cloud with exactly the arguments the
program declares.

The program runs under Pulumi's mocks (testbeds/targets/cloud/offline.py), which record every
resource with its inputs in the order Pulumi registered them (a resource is registered only
once the outputs it takes are known, so the order is a dependency order). Each record is
then made with openstacksdk the way pulumi-openstack's provider would make it: the mocks'
ids (`<resource name>-id`, `net-<name>` for looked-up networks) become the real ids, names
the program leaves to the provider get the provider's auto-name (`<resource name>-<hex>`),
flavors and images named by the site are looked up by name. A type this module does not
map fails by name, so a new resource cannot slip past the test."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from openstack.connection import Connection

from testbeds.model.plan import Plan
from testbeds.targets.cloud.offline import RecordingMocks
from testbeds.targets.openstack.program import OpenStackTestbed, OpenStackTestbedArgs
from testbeds.targets.openstack.site import openstack_site

COMPONENT_PREFIX = "testbeds:openstack:"
# Types the control plane has no service for: their arguments are checked against the plan
# instead (see NOT_HERE_REASON), and nothing is created.
NOT_HERE = frozenset(
    {"openstack:blockstorage/volume:Volume", "openstack:compute/volumeAttach:VolumeAttach"}
)
NOT_HERE_REASON = "the control plane runs no block storage service (Cinder)"
SERVER_ACTIVE_S = 180
NETWORK, SUBNET, ROUTER = "network:Network", "subnet:Subnet", "router:Router"
SECURITY_GROUP, PORT, SERVER_GROUP = "secGroup:SecGroup", "port:Port", "serverGroup:ServerGroup"


@dataclass(frozen=True)
class Declared:
    """One resource as the program declared it."""

    type: str
    name: str
    inputs: dict[str, Any]


def declared_resources(plan: Plan, public_key: str) -> list[Declared]:
    """Every resource the OpenStack program declares for `plan`, in registration order."""
    recorder = RecordingMocks()
    pulumi.runtime.set_mocks(recorder, project="wp5-testbeds-openstack", stack="replay")
    testbed = OpenStackTestbed(
        plan.instance,
        OpenStackTestbedArgs(plan=plan, site=openstack_site(plan), public_key=public_key),
    )

    @pulumi.runtime.test  # type: ignore[misc]
    def settled() -> Any:
        return testbed.nodes.apply(lambda nodes: nodes)

    settled()
    return [
        Declared(typ, name, inputs)
        for typ, name, inputs in recorder.resources
        if not typ.startswith(COMPONENT_PREFIX)
    ]


@dataclass
class Made:
    """A resource made by the replay: its declaration, the SDK object, how to delete it and
    how to wait until it is gone (servers go asynchronously)."""

    declared: Declared
    made: Any
    delete: Callable[[], None]
    gone: Callable[[], None] = lambda: None


@dataclass
class Replay:
    """Makes declared resources in `cloud` (the testbed project's own user) and keeps what
    it made, to be read back and deleted in reverse order."""

    cloud: Connection
    made: list[Made] = field(default_factory=list)
    # Real ids by (type, resource name): the mocks' ids name the resource only, and a port
    # and a server group, say, may share a name.
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    by_name: dict[str, Made] = field(default_factory=dict)
    # Servers with an SR-IOV port, whose binding is checked for a PCI virtual function.
    on_sriov: set[str] = field(default_factory=set)

    def ref(self, mock_id: str, kind: str) -> str:
        """The real id of the resource of type `kind` (the end of its type token, as in
        "port:Port") the program referred to by a mock's id."""
        name = mock_id.removesuffix("-id")
        for (typ, made_name), real in self.ids.items():
            if made_name == name and typ.endswith(kind):
                return real
        if mock_id.startswith("net-") and kind == NETWORK:
            network = self.cloud.network.find_network(mock_id.removeprefix("net-"))
            assert network is not None, f"network {mock_id[4:]!r} the program looks up"
            return str(network.id)
        raise AssertionError(f"reference {mock_id!r} to no {kind} made before it")

    def create(self, resource: Declared) -> None:
        if resource.type in NOT_HERE:
            return
        maker = MAKERS.get(resource.type)
        if maker is None:
            raise AssertionError(
                f"resource type {resource.type} ({resource.name}) is declared by the program "
                "but the replay does not map it: add it to tests/openstack/replay.py"
            )
        made, delete, *gone = maker(self, resource.name, resource.inputs)
        record = Made(resource, made, delete, *gone)
        self.made.append(record)
        self.by_name[resource.name] = record
        if getattr(made, "id", None):
            self.ids[(resource.type, resource.name)] = str(made.id)

    def wait_for_servers(self) -> dict[str, Any]:
        """Each server once Nova settled it (ACTIVE or ERROR), by resource name."""
        return {
            record.declared.name: _wait_settled(self.cloud, record.made)
            for record in self.made
            if record.declared.type == "openstack:compute/instance:Instance"
        }

    def delete_all(self) -> list[str]:
        """Delete in reverse order of making, each gone before the next; what could not be
        deleted, by name."""
        failed: list[str] = []
        for record in reversed(self.made):
            try:
                record.delete()
                record.gone()
            except Exception as error:  # noqa: BLE001 - every failure is reported by name
                failed.append(f"{record.declared.name}: {type(error).__name__}: {error}")
        self.made.clear()
        return failed


def _wait_settled(cloud: Connection, server: Any) -> Any:
    deadline = time.monotonic() + SERVER_ACTIVE_S
    while True:
        current = cloud.compute.get_server(server.id)
        if current.status in ("ACTIVE", "ERROR"):
            return current
        assert time.monotonic() < deadline, f"server {server.name} stayed {current.status}"
        time.sleep(1)


def auto_name(resource_name: str) -> str:
    """The name pulumi-openstack's auto-naming gives a resource the program did not name."""
    return f"{resource_name}-{secrets.token_hex(4)[:7]}"


# A maker returns what it made, how to delete it and, optionally, how to wait until gone.
Maker = Callable[[Replay, str, dict[str, Any]], tuple[Any, ...]]


def _network(replay: Replay, name: str, inputs: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    made = net.create_network(name=auto_name(name), admin_state_up=inputs["adminStateUp"])
    return made, lambda: net.delete_network(made, ignore_missing=False)


def _subnet(replay: Replay, name: str, inputs: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    made = net.create_subnet(
        name=auto_name(name),
        network_id=replay.ref(inputs["networkId"], NETWORK),
        cidr=inputs["cidr"],
        ip_version=inputs["ipVersion"],
        dns_nameservers=inputs.get("dnsNameservers", []),
    )
    return made, lambda: net.delete_subnet(made, ignore_missing=False)


def _router(replay: Replay, name: str, inputs: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    made = net.create_router(
        name=auto_name(name),
        external_gateway_info={"network_id": replay.ref(inputs["externalNetworkId"], NETWORK)},
    )
    return made, lambda: net.delete_router(made, ignore_missing=False)


def _router_interface(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    router = net.get_router(replay.ref(inputs["routerId"], ROUTER))
    subnet_id = replay.ref(inputs["subnetId"], SUBNET)
    made = net.add_interface_to_router(router, subnet_id=subnet_id)
    return made, lambda: net.remove_interface_from_router(router, subnet_id=subnet_id)


def _security_group(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    made = net.create_security_group(name=auto_name(name), description=inputs["description"])
    if inputs.get("deleteDefaultRules"):  # what the provider does for delete_default_rules
        for rule in net.security_group_rules(security_group_id=made.id):
            net.delete_security_group_rule(rule)
    return made, lambda: net.delete_security_group(made, ignore_missing=False)


def _security_group_rule(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    remote_group = inputs.get("remoteGroupId")
    made = net.create_security_group_rule(
        security_group_id=replay.ref(inputs["securityGroupId"], SECURITY_GROUP),
        direction=inputs["direction"],
        ethertype=inputs["ethertype"],
        protocol=inputs.get("protocol"),
        port_range_min=inputs.get("portRangeMin"),
        port_range_max=inputs.get("portRangeMax"),
        remote_ip_prefix=inputs.get("remoteIpPrefix"),
        remote_group_id=replay.ref(remote_group, SECURITY_GROUP) if remote_group else None,
    )
    return made, lambda: net.delete_security_group_rule(made, ignore_missing=False)


def _port(replay: Replay, name: str, inputs: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    arguments: dict[str, Any] = {
        "name": auto_name(name),
        "network_id": replay.ref(inputs["networkId"], NETWORK),
    }
    if "fixedIps" in inputs:
        arguments["fixed_ips"] = [
            {"subnet_id": replay.ref(f["subnetId"], SUBNET)} for f in inputs["fixedIps"]
        ]
    if inputs.get("noSecurityGroups"):
        arguments["security_group_ids"] = []
    elif inputs.get("securityGroupIds") is not None:
        arguments["security_group_ids"] = [
            replay.ref(g, SECURITY_GROUP) for g in inputs["securityGroupIds"]
        ]
    if "portSecurityEnabled" in inputs:
        arguments["port_security_enabled"] = inputs["portSecurityEnabled"]
    if "binding" in inputs:
        arguments["binding_vnic_type"] = inputs["binding"]["vnicType"]
    made = net.create_port(**arguments)
    return made, lambda: net.delete_port(made, ignore_missing=False)


def _keypair(replay: Replay, name: str, inputs: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    compute = replay.cloud.compute
    made = compute.create_keypair(name=auto_name(name), public_key=inputs["publicKey"])
    return made, lambda: compute.delete_keypair(made, ignore_missing=False)


def _server_group(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None]]:
    compute = replay.cloud.compute
    made = compute.create_server_group(name=auto_name(name), policies=[inputs["policies"]])
    return made, lambda: compute.delete_server_group(made, ignore_missing=False)


def _server(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None], Callable[[], None]]:
    compute = replay.cloud.compute
    flavor = compute.find_flavor(inputs["flavorName"], ignore_missing=False)
    image = replay.cloud.image.find_image(inputs["imageName"], ignore_missing=False)
    keypair = next(
        r.made for r in replay.made if r.declared.type.endswith("keypair:Keypair")
        and inputs["keyPair"] == r.declared.inputs["name"]
    )  # fmt: skip
    ports = [replay.ref(n["port"], PORT) for n in inputs["networks"]]
    made = compute.create_server(
        name=inputs["name"],
        flavor_id=flavor.id,
        image_id=image.id,
        key_name=keypair.name,
        networks=[{"port": port} for port in ports],
        user_data=base64.b64encode(inputs["userData"].encode()).decode(),
        scheduler_hints={h_key: replay.ref(h, SERVER_GROUP) for hint in inputs["schedulerHints"]
                         for h_key, h in hint.items()},
        metadata=inputs["metadata"],
    )  # fmt: skip
    if any(
        replay.cloud.network.get_port(p).binding_vnic_type in ("direct", "direct-physical")
        for p in ports
    ):
        replay.on_sriov.add(name)

    return (
        made,
        lambda: compute.delete_server(made, ignore_missing=False),
        lambda: compute.wait_for_delete(made, interval=1, wait=SERVER_ACTIVE_S),
    )


def _floating_ip(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    pool = net.find_network(inputs["pool"], ignore_missing=False)
    made = net.create_ip(floating_network_id=pool.id)
    return made, lambda: net.delete_ip(made, ignore_missing=False)


def _floating_ip_associate(
    replay: Replay, name: str, inputs: dict[str, Any]
) -> tuple[Any, Callable[[], None]]:
    net = replay.cloud.network
    floating = next(
        r.made for r in replay.made if r.declared.type.endswith("floatingIp:FloatingIp")
    )
    port_id = replay.ref(inputs["portId"], PORT)
    made = net.update_ip(floating, port_id=port_id)
    return made, lambda: net.update_ip(floating, port_id=None)


MAKERS: dict[str, Maker] = {
    "openstack:networking/network:Network": _network,
    "openstack:networking/subnet:Subnet": _subnet,
    "openstack:networking/router:Router": _router,
    "openstack:networking/routerInterface:RouterInterface": _router_interface,
    "openstack:networking/secGroup:SecGroup": _security_group,
    "openstack:networking/secGroupRule:SecGroupRule": _security_group_rule,
    "openstack:networking/port:Port": _port,
    "openstack:compute/keypair:Keypair": _keypair,
    "openstack:compute/serverGroup:ServerGroup": _server_group,
    "openstack:compute/instance:Instance": _server,
    "openstack:networking/floatingIp:FloatingIp": _floating_ip,
    "openstack:networking/floatingIpAssociate:FloatingIpAssociate": _floating_ip_associate,
}
