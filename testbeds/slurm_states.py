"""Slurm's view of nodes, as sinfo prints it: each node's state and reason. Read by
`testbed status` (for elastic nodes), the elastic checks and the fault tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlurmNodeState:
    """A node's state as sinfo abbreviates it (`idle~` powered down, `alloc#` being
    started, `down~` failed to start) and Slurm's reason, if any."""

    state: str
    reason: str = ""

    @property
    def powered_down(self) -> bool:
        return self.state.endswith("~")

    def __str__(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason else self.state


def sinfo_arguments(nodes: list[str]) -> list[str]:
    """sinfo's arguments for the lines `parse_sinfo` reads: one per node."""
    return ["--noheader", "--Node", "--nodes", ",".join(nodes), "--format", "%N|%t|%E"]


def parse_sinfo(output: str) -> dict[str, SlurmNodeState]:
    states: dict[str, SlurmNodeState] = {}
    for line in output.splitlines():
        name, _, rest = line.partition("|")
        state, _, reason = rest.partition("|")
        if name.strip() and state.strip():
            reason = "" if reason.strip() == "none" else reason.strip()
            states[name.strip()] = SlurmNodeState(state.strip(), reason)
    return states
