"""Elastic nodes on OpenStack: a resume creates the node's server (its group's flavor, image,
network and security groups, as the Pulumi program exports them for the group) with the
instance's elastic credential (`testbeds.targets.openstack.credentials`: this project, servers
only); a suspend deletes it. The Pulumi program holds only the static nodes, so it never
fights these servers; they carry the instance's metadata, and only a server with it and
the elastic mark is ever deleted."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Protocol

from testbeds.errors import DeployError

INSTANCE_KEY = "wp5-testbeds.instance"
NODE_KEY = "wp5-testbeds.node"
ELASTIC_KEY = "wp5-testbeds.elastic"
ACTIVE_TIMEOUT_S = 600


@dataclass(frozen=True)
class ServerSpec:
    """What each server of one elastic group is made of (the program's `elastic_groups`)."""

    flavor_id: str
    image_id: str
    network_id: str
    security_group_ids: tuple[str, ...] = ()
    key_name: str | None = None
    server_group_id: str | None = None
    # cloud-init for the node (its host key to the console, the login user's key).
    user_data: str = ""
    scheduler_hints: dict[str, str] = field(default_factory=dict)


class Compute(Protocol):
    """The part of openstacksdk's compute proxy used here."""

    def create_server(self, **attrs: Any) -> Any: ...
    def wait_for_server(self, server: Any, **kwargs: Any) -> Any: ...
    def servers(self, **query: Any) -> Any: ...
    def delete_server(self, server: Any) -> Any: ...
    def wait_for_delete(self, server: Any, **kwargs: Any) -> Any: ...


class OpenStackNodes:
    """Create and delete the servers of one instance's elastic nodes."""

    def __init__(
        self, compute: Compute, instance: str, specs: dict[str, ServerSpec], groups: dict[str, str]
    ) -> None:
        """`specs` by node group; `groups` maps each elastic node to its group."""
        self.compute = compute
        self.instance = instance
        self.specs = specs
        self.groups = groups
        self.elastic_nodes = frozenset(groups)

    def server_name(self, node: str) -> str:
        return f"{self.instance}-{node}"

    def resume(self, node: str) -> Any:
        """Create the node's server and wait until it is ACTIVE; one that ends in ERROR
        is deleted again and reported."""
        if node not in self.elastic_nodes:
            raise DeployError(f"{node!r} is not an elastic node of {self.instance}")
        spec = self.specs[self.groups[node]]
        attrs: dict[str, Any] = {
            "name": self.server_name(node),
            "flavor_id": spec.flavor_id,
            "image_id": spec.image_id,
            "networks": [{"uuid": spec.network_id}],
            "metadata": {INSTANCE_KEY: self.instance, NODE_KEY: node, ELASTIC_KEY: "true"},
        }
        if spec.security_group_ids:
            attrs["security_groups"] = [{"name": group} for group in spec.security_group_ids]
        if spec.key_name:
            attrs["key_name"] = spec.key_name
        if spec.server_group_id:
            attrs["scheduler_hints"] = {"group": spec.server_group_id}
        if spec.user_data:
            attrs["user_data"] = base64.b64encode(spec.user_data.encode()).decode()
        server = self.compute.create_server(**attrs)
        try:
            return self.compute.wait_for_server(
                server, status="ACTIVE", failures=["ERROR"], interval=2, wait=ACTIVE_TIMEOUT_S
            )
        except Exception as error:
            self.remove(node)
            raise DeployError(f"server {self.server_name(node)} did not start: {error}") from None

    def ours(self, node: str) -> list[Any]:
        """This instance's elastic servers of the node (anything else of that name stays)."""
        name = self.server_name(node)
        return [
            server
            for server in self.compute.servers(name=f"^{name}$")
            if server.name == name
            and (server.metadata or {}).get(INSTANCE_KEY) == self.instance
            and (server.metadata or {}).get(ELASTIC_KEY) == "true"
        ]

    def remove(self, node: str) -> None:
        for server in self.ours(node):
            self.compute.delete_server(server)
            self.compute.wait_for_delete(server, interval=2, wait=ACTIVE_TIMEOUT_S)

    def vanished(self, started: list[str]) -> list[str]:
        """Of the nodes started, those whose server is gone or broken."""
        return [
            node
            for node in started
            if not any(server.status == "ACTIVE" for server in self.ours(node))
        ]
