"""Network state podman's backend (netavark) left behind for networks that no longer exist.

When podman is killed or hangs while it sets up or tears down a network, the bridge and
its NAT rules can outlive the network. A new network that gets the same subnet then
shares a NAT chain whose stale MASQUERADE rule comes first, and traffic between the nodes
is rewritten to the gateway's address: daemons answer the wrong peer and jobs hang with
no error. This finds such leftovers so `up` can stop with a clear message instead."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

BRIDGE = re.compile(r"^podman\d+$")
JUMP = re.compile(r"^-A POSTROUTING -s (\S+) -j (NETAVARK-[0-9A-F]+)$")


def stale_network_state(
    networks: list[dict[str, Any]],
    bridges: list[str],
    postrouting: list[str],
    chains: dict[str, list[str]],
) -> list[str]:
    """What is left of networks podman no longer has: bridges no network uses, NAT jumps
    for subnets no network has or for one subnet twice, chains masquerading twice."""
    interfaces = {n.get("network_interface") for n in networks}
    subnets = {s["subnet"] for n in networks for s in n.get("subnets") or []}
    found = [
        f"bridge {b} (no podman network uses it)"
        for b in bridges
        if BRIDGE.match(b) and b not in interfaces
    ]
    jumps = [m.groups() for m in map(JUMP.match, postrouting) if m]
    seen = Counter(subnet for subnet, _ in jumps)
    for subnet, chain in jumps:
        if subnet not in subnets:
            found.append(f"NAT rule for {subnet} -> {chain} (no podman network has that subnet)")
        elif seen[subnet] > 1:
            found.append(f"NAT rule for {subnet} -> {chain} (the subnet has {seen[subnet]} rules)")
    for chain, rules in chains.items():
        masquerades = sum("-j MASQUERADE" in rule for rule in rules)
        if masquerades > 1:
            found.append(f"NAT chain {chain} masquerades {masquerades} times (once is normal)")
    return found


def _lines(*command: str) -> list[str]:
    if shutil.which(command[0]) is None:
        return []
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _snapshot(list_networks: Callable[[], list[dict[str, Any]]]) -> list[str]:
    links = json.loads("\n".join(_lines("ip", "-j", "link", "show", "type", "bridge")) or "[]")
    postrouting = _lines("iptables", "-t", "nat", "-S", "POSTROUTING")
    chains = {
        chain: _lines("iptables", "-t", "nat", "-S", chain)
        for chain in sorted({m.group(2) for m in map(JUMP.match, postrouting) if m})
    }
    # Networks last: a bridge or rule seen before belongs to a network that still exists.
    networks = list_networks()
    return stale_network_state(networks, [link["ifname"] for link in links], postrouting, chains)


def current_stale_network_state(
    list_networks: Callable[[], list[dict[str, Any]]], settle_s: float = 2.0
) -> list[str]:
    """stale_network_state() of this machine (empty where `ip` or `iptables` are missing).

    Another testbed coming up or going down at the same moment changes bridges and rules
    while they are read, so only what two reads a moment apart agree on is reported."""
    first = _snapshot(list_networks)
    if not first:
        return []
    time.sleep(settle_s)
    second = set(_snapshot(list_networks))
    return [item for item in first if item in second]


def cleanup_commands(stale: list[str]) -> list[str]:
    """Shell commands that remove what stale_network_state() reported."""
    commands = []
    for item in stale:
        words = item.split()
        if words[0] == "bridge":
            commands.append(f"ip link delete {words[1]}")
        elif words[:2] == ["NAT", "rule"]:
            commands.append(f"iptables -t nat -D POSTROUTING -s {words[3]} -j {words[5]}")
        elif words[:2] == ["NAT", "chain"]:
            commands.append(f"iptables -t nat -F {words[2]}  # then `podman network reload --all`")
    return commands
