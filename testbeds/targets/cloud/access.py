"""How the control node reaches a cloud testbed's nodes: through the entry node's floating
IP (ProxyJump), with the stack's SSH key, checking the host keys the nodes made themselves
(read from their console logs through the cloud's API)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from testbeds.nodes import ProvisionedNode
from testbeds.sshconfig import Bastion, Login, reached_through, write_ssh_config
from testbeds.state import StateDir, write_private


@dataclass(frozen=True)
class CloudNode:
    """A node as a cloud stack exports it: its fixed address and its server's id."""

    name: str
    group: str
    roles: tuple[str, ...]
    address: str
    server_id: str
    # The node the floating IP belongs to (every other node is reached through it).
    entry: bool

    def as_output(self) -> dict[str, Any]:
        """The stack output form (Pulumi outputs are JSON)."""
        return {**asdict(self), "roles": list(self.roles)}

    @classmethod
    def from_output(cls, data: dict[str, Any]) -> CloudNode:
        return cls(**{**data, "roles": tuple(data["roles"])})


def cloud_nodes(
    state: StateDir,
    outputs: list[dict[str, Any]],
    entry_address: str,
    private_key: str,
    user: str,
    host_keys: Callable[[dict[str, str]], dict[str, str]],
) -> list[ProvisionedNode]:
    """Write the key, known_hosts and ssh_config of the instance; return nodes that use them.
    `host_keys` gives each node's host key for its server id (node name -> server id)."""
    nodes = [CloudNode.from_output(o) for o in outputs]
    keys = host_keys({n.name: n.server_id for n in nodes})
    key_file = state.secrets_dir / "ssh_cloud_ed25519"
    write_private(key_file, private_key.encode())
    (entry,) = [n for n in nodes if n.entry]
    known_hosts = state.path / "known_hosts"
    lines = [f"{entry_address} {keys[entry.name]}"]
    lines += [f"{n.address} {keys[n.name]}" for n in nodes]
    known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_ssh_config(
        state,
        {n.name: (n.address, 22) for n in nodes},
        Login(user, key_file, known_hosts),
        Bastion(entry_address, user),
    )
    return [
        reached_through(config, ProvisionedNode(n.name, n.group, n.roles, n.address, ""), user)
        for n in nodes
    ]
