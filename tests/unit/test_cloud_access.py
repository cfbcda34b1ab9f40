"""How the control node reaches a cloud testbed: the stack's key kept private, known_hosts
from the host keys the stack generated (the entry node also under its floating IP), and one
ssh_config that jumps through the entry node with strict checking."""

from __future__ import annotations

import stat
from pathlib import Path

from testbeds.state import StateDir
from testbeds.targets.cloud.access import cloud_nodes

OUTPUTS = [
    {
        "name": name,
        "group": name.rstrip("12"),
        "roles": ["common"],
        "address": address,
        "server_id": f"server-{name}",
        "entry": name == "login",
    }
    for name, address in (("login", "10.42.0.5"), ("cpu1", "10.42.0.6"), ("cpu2", "10.42.0.7"))
]


def test_nodes_reached_through_the_entry_node_with_known_keys(tmp_path: Path) -> None:
    state = StateDir("cloud", root=tmp_path)
    asked: list[dict[str, str]] = []

    def host_keys(servers: dict[str, str]) -> dict[str, str]:
        asked.append(servers)
        return {node: f"ssh-ed25519 K{node}" for node in servers}

    nodes = cloud_nodes(state, OUTPUTS, "192.0.2.10", "PRIVATE KEY", "debian", host_keys)
    assert asked == [{n: f"server-{n}" for n in ("login", "cpu1", "cpu2")}]
    key = state.secrets_dir / "ssh_cloud_ed25519"
    assert key.read_text() == "PRIVATE KEY"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (state.path / "known_hosts").read_text().splitlines() == [
        "192.0.2.10 ssh-ed25519 Klogin",
        "10.42.0.5 ssh-ed25519 Klogin",
        "10.42.0.6 ssh-ed25519 Kcpu1",
        "10.42.0.7 ssh-ed25519 Kcpu2",
    ]
    config = (state.path / "ssh_config").read_text()
    assert 'Host wp5-bastion\n  HostName "192.0.2.10"' in config
    assert config.count("ProxyJump wp5-bastion") == 3
    assert config.count("StrictHostKeyChecking yes") == 4
    assert config.count("ControlMaster auto") == 3  # not for the jumps
    cpu1 = next(n for n in nodes if n.name == "cpu1")
    assert cpu1.ansible_vars["ansible_ssh_common_args"] == f"-F {state.path / 'ssh_config'}"
    assert cpu1.ansible_vars["ansible_become"] is True
    assert cpu1.testinfra_uri == f"safe-ssh://cpu1?ssh_config={state.path / 'ssh_config'}"
