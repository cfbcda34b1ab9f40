"""Finding the network state podman left behind, from the shapes seen on these machines."""

from __future__ import annotations

from testbeds.targets.local.netstate import stale_network_state

NETWORKS = [
    {"name": "podman", "network_interface": "podman0", "subnets": [{"subnet": "10.88.0.0/16"}]},
    {"name": "wp5-a", "network_interface": "podman1", "subnets": [{"subnet": "10.89.0.0/24"}]},
]
HEALTHY_CHAIN = ["-N NETAVARK-CF06", "-A NETAVARK-CF06 -d 10.89.0.0/24 -j ACCEPT",
                 "-A NETAVARK-CF06 ! -d 224.0.0.0/4 -j MASQUERADE"]  # fmt: skip


def test_a_healthy_machine_has_nothing_stale() -> None:
    postrouting = ["-P POSTROUTING ACCEPT", "-A POSTROUTING -j NETAVARK-HOSTPORT-MASQ",
                   "-A POSTROUTING -s 10.89.0.0/24 -j NETAVARK-CF06"]  # fmt: skip
    found = stale_network_state(
        NETWORKS, ["podman1", "docker0"], postrouting, {"NETAVARK-CF06": HEALTHY_CHAIN}
    )
    assert found == []


def test_leftovers_of_a_deleted_network_are_named_with_how_to_remove_them() -> None:
    """A bridge of a deleted network, its NAT jump, and a chain a new network of the same
    name now shares with the old MASQUERADE first (the state that made srun hang)."""
    postrouting = ["-A POSTROUTING -s 10.89.0.0/24 -j NETAVARK-CF06",
                   "-A POSTROUTING -s 10.89.1.0/24 -j NETAVARK-1D87"]  # fmt: skip
    shared = ["-N NETAVARK-CF06", "-A NETAVARK-CF06 -d 10.89.1.0/24 -j ACCEPT",
              "-A NETAVARK-CF06 ! -d 224.0.0.0/4 -j MASQUERADE", *HEALTHY_CHAIN[1:]]  # fmt: skip
    found = stale_network_state(
        NETWORKS, ["podman1", "podman2"], postrouting, {"NETAVARK-CF06": shared}
    )
    assert [item.description for item in found] == [
        "bridge podman2 (no podman network uses it)",
        "NAT rule for 10.89.1.0/24 -> NETAVARK-1D87 (no podman network has that subnet)",
        "NAT chain NETAVARK-CF06 masquerades 2 times (once is normal)",
    ]
    assert [item.command for item in found] == [
        "ip link delete podman2",
        "iptables -t nat -D POSTROUTING -s 10.89.1.0/24 -j NETAVARK-1D87",
        "iptables -t nat -F NETAVARK-CF06  # then `podman network reload --all`",
    ]


def test_two_rules_for_one_subnet_are_reported() -> None:
    postrouting = ["-A POSTROUTING -s 10.89.0.0/24 -j NETAVARK-CF06",
                   "-A POSTROUTING -s 10.89.0.0/24 -j NETAVARK-AB12"]  # fmt: skip
    found = stale_network_state(NETWORKS, ["podman1"], postrouting, {})
    assert len(found) == 2 and all("has 2 rules" in item.description for item in found)
