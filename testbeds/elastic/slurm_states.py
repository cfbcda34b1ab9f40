"""Elastic nodes as Slurm sees them (for `testbed status`): state and reason, from sinfo on
the controller."""

from __future__ import annotations

from testbeds.targets import podman


def slurm_states(controller: str, nodes: list[str]) -> dict[str, str]:
    """Each node's Slurm state (`idle~` is powered down; `alloc#` is being started), with
    the reason where Slurm has one; empty when the controller does not answer."""
    proc = podman.exec_(
        controller, "sinfo", "--noheader", "--Node", "--nodes", ",".join(nodes),
        "--format", "%N|%t|%E", timeout=30,
    )  # fmt: skip
    if proc.returncode != 0:
        return {}
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition("|")
        state, _, reason = rest.partition("|")
        reason = "" if reason.strip() in ("", "none") else f" ({reason.strip()})"
        states[name.strip()] = state.strip() + reason
    return states
