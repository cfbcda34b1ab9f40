"""One ssh_config per instance for targets whose nodes sit behind a jump host (a partner
site's bastion, a cloud testbed's entry node): Ansible (`-F`) and testinfra use the same
file, so both take the same path and check the same host keys, strictly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from testbeds.nodes import ProvisionedNode
from testbeds.state import StateDir, write_private

BASTION = "wp5-bastion"
CONNECT_TIMEOUT_S = 20


@dataclass(frozen=True)
class Login:
    user: str
    private_key: Path
    known_hosts: Path


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str
    port: int = 22


def quoted(value: object) -> str:
    """One ssh_config argument, double-quoted; a value that could end the quote or the
    line (and so add an option such as ProxyCommand) is refused, never written."""
    text = str(value)
    if '"' in text or not text.isprintable() or not text:
        raise ValueError(f"refusing to write {text[:60]!r} into ssh_config")
    return f'"{text}"'


def write_ssh_config(
    state: StateDir,
    hosts: dict[str, tuple[str, int]],
    login: Login,
    bastion: Bastion | None,
    path: Path | None = None,
) -> Path:
    """One Host block per node, named after it (and one for the bastion), in the
    instance's ssh_config unless `path` names another file."""
    common = [
        f"  IdentityFile {quoted(login.private_key)}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {quoted(login.known_hosts)}",
        "  StrictHostKeyChecking yes",
        f"  ConnectTimeout {CONNECT_TIMEOUT_S}",
    ]
    # Connections to the nodes are shared; jumps through the bastion are not, because
    # several first connections at once would race to become the bastion's master. The
    # sockets live under ~/.ssh: a socket path (plus the suffix ssh adds while creating
    # it) must fit in 108 bytes, which a deep state directory would exceed.
    # One socket prefix per instance, so that no instance reuses another's connections.
    sockets = Path.home() / ".ssh"
    sockets.mkdir(mode=0o700, exist_ok=True)
    prefix = hashlib.sha256(str(state.path).encode()).hexdigest()[:10]
    shared = [
        "  ControlMaster auto",
        f"  ControlPath {quoted(f'{sockets}/wp5-{prefix}-%C')}",
        "  ControlPersist 120s",
    ]
    lines = []
    if bastion:
        lines += [f"Host {BASTION}", f"  HostName {quoted(bastion.host)}"]
        lines += [f"  Port {int(bastion.port)}", f"  User {quoted(bastion.user)}"]
        lines += [*common, "  ControlMaster no", ""]
    for name, (address, port) in hosts.items():
        lines += [f"Host {name}", f"  HostName {quoted(address)}", f"  Port {int(port)}"]
        if bastion:
            lines.append(f"  ProxyJump {BASTION}")
        lines += [f"  User {quoted(login.user)}", *common, *shared, ""]
    path = path or state.path / "ssh_config"
    state.create()
    write_private(path, "\n".join(lines).encode())
    return path


def reached_through(config: Path, node: ProvisionedNode, user: str) -> ProvisionedNode:
    """The node with Ansible and testinfra pointed at its Host block of the ssh_config.

    testinfra's `safe-ssh` reports the remote command's own exit status: plain `ssh` exits
    255 for its own failures and for a command that exits 255 (a check's inner `ssh` that
    is refused, say), and testinfra then raises instead of returning the result."""
    ansible_vars: dict[str, Any] = {
        **node.ansible_vars,
        "ansible_host": node.name,
        "ansible_user": user,
        "ansible_ssh_common_args": f"-F {config}",
    }
    if user != "root":
        ansible_vars["ansible_become"] = True
    return replace(
        node,
        testinfra_uri=f"safe-ssh://{node.name}?ssh_config={config}",
        ansible_vars=ansible_vars,
    )
