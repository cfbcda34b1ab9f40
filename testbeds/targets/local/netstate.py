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
from dataclasses import dataclass
from typing import Any

BRIDGE = re.compile(r"^podman\d+$")
JUMP = re.compile(r"^-A POSTROUTING -s (\S+) -j (NETAVARK-[0-9A-F]+)$")


@dataclass(frozen=True)
class Leftover:
    """One piece of stale network state and the command that removes it."""

    description: str
    command: str


def stale_network_state(
    networks: list[dict[str, Any]],
    bridges: list[str],
    postrouting: list[str],
    chains: dict[str, list[str]],
) -> list[Leftover]:
    """What is left of networks podman no longer has: bridges no network uses, NAT jumps
    for subnets no network has or for one subnet twice, chains masquerading twice."""
    interfaces = {n.get("network_interface") for n in networks}
    subnets = {s["subnet"] for n in networks for s in n.get("subnets") or []}
    found = [
        Leftover(f"bridge {b} (no podman network uses it)", f"ip link delete {b}")
        for b in bridges
        if BRIDGE.match(b) and b not in interfaces
    ]
    jumps = [m.groups() for m in map(JUMP.match, postrouting) if m]
    seen = Counter(subnet for subnet, _ in jumps)
    for subnet, chain in jumps:
        remove = f"iptables -t nat -D POSTROUTING -s {subnet} -j {chain}"
        if subnet not in subnets:
            why = "no podman network has that subnet"
        elif seen[subnet] > 1:
            why = f"the subnet has {seen[subnet]} rules"
        else:
            continue
        found.append(Leftover(f"NAT rule for {subnet} -> {chain} ({why})", remove))
    for chain, rules in chains.items():
        masquerades = sum("-j MASQUERADE" in rule for rule in rules)
        if masquerades > 1:
            found.append(
                Leftover(
                    f"NAT chain {chain} masquerades {masquerades} times (once is normal)",
                    f"iptables -t nat -F {chain}  # then `podman network reload --all`",
                )
            )
    return found


def _lines(*command: str) -> list[str]:
    if shutil.which(command[0]) is None:
        return []
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _snapshot(list_networks: Callable[[], list[dict[str, Any]]]) -> list[Leftover]:
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
) -> list[Leftover]:
    """stale_network_state() of this machine (empty where `ip` or `iptables` are missing).

    Another testbed coming up or going down at the same moment changes bridges and rules
    while they are read, so only what two reads a moment apart agree on is reported."""
    first = _snapshot(list_networks)
    if not first:
        return []
    time.sleep(settle_s)
    second = set(_snapshot(list_networks))
    return [item for item in first if item in second]
