"""Elastic nodes as Slurm sees them (for `testbed status`): state and reason, from sinfo on
the controller."""

from __future__ import annotations

from dataclasses import dataclass

from testbeds.model.plan import Plan, resolve
from testbeds.state import StateDir
from testbeds.targets.base import NodeStatus
from testbeds.targets.local import podman
from testbeds.targets.local.target import container_name


def controller_container(plan: Plan) -> str:
    """The container of the plan's Slurm controller (the local target's)."""
    controller = next(n for n in plan.nodes if "slurm_controller" in n.roles)
    return container_name(plan.instance, controller.name)


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


def slurm_states(controller: str, nodes: list[str]) -> dict[str, SlurmNodeState]:
    """Each node's Slurm state; empty when the controller does not answer."""
    proc = podman.exec_(controller, "sinfo", *sinfo_arguments(nodes), timeout=30)
    return parse_sinfo(proc.stdout) if proc.returncode == 0 else {}


def with_elastic_rows(instance: str, rows: list[NodeStatus]) -> list[NodeStatus]:
    """The rows with each elastic node's Slurm state, as the controller's slurmctld has it."""
    state = StateDir(instance)
    if not state.exists():
        return rows
    record = state.read_record()
    plan = resolve(record.definition, record.site, record.target, instance)
    if not plan.elastic_nodes:
        return rows
    states = slurm_states(controller_container(plan), [n.name for n in plan.elastic_nodes])
    by_name = {row.name: row for row in rows}
    for node in plan.elastic_nodes:
        slurm = str(states.get(node.name, "unknown to Slurm"))
        row = by_name.get(node.name)
        by_name[node.name] = NodeStatus(
            name=node.name,
            state=row.state if row else "absent",
            detail=f"elastic; Slurm: {slurm}" + (f"; {row.detail}" if row and row.detail else ""),
            elastic=True,
        )
    return list(by_name.values())
