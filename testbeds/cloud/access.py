"""How the control node reaches a cloud testbed's nodes: through the entry node's floating
IP (ProxyJump), with the stack's SSH key, checking the host keys the stack generated."""

from __future__ import annotations

from typing import Any

from testbeds.sshconfig import Bastion, Login, reached_through, write_ssh_config
from testbeds.state import StateDir, write_private
from testbeds.targets.base import ProvisionedNode


def cloud_nodes(
    state: StateDir, records: list[dict[str, Any]], private_key: str, user: str
) -> list[ProvisionedNode]:
    """Write the key, known_hosts and ssh_config of the instance; return nodes that use them."""
    key_file = state.secrets_dir / "ssh_cloud_ed25519"
    write_private(key_file, private_key.encode())
    entry = next(r for r in records if r["facts"]["entry"])
    known_hosts = state.path / "known_hosts"
    lines = [f"{entry['facts']['entry_address']} {entry['facts']['host_key']}"]
    lines += [f"{r['address']} {r['facts']['host_key']}" for r in records]
    known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_ssh_config(
        state,
        {r["name"]: (r["address"], 22) for r in records},
        Login(user, key_file, known_hosts),
        Bastion(entry["facts"]["entry_address"], user),
    )
    return [reached_through(config, ProvisionedNode.from_dict(r), user) for r in records]
