"""Elastic nodes as Slurm sees them (for `testbed status`): state and reason, from sinfo on
the controller."""

from __future__ import annotations

from testbeds.model.plan import Plan, resolve
from testbeds.state import StateDir
from testbeds.targets import podman
from testbeds.targets.base import NodeStatus
from testbeds.targets.local import container_name


def controller_container(plan: Plan) -> str:
    """The container of the plan's Slurm controller (the local target's)."""
    controller = next(n for n in plan.nodes if "slurm_controller" in n.roles)
    return container_name(plan.instance, controller.name)


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
        slurm = states.get(node.name, "unknown to Slurm")
        row = by_name.get(node.name)
        by_name[node.name] = NodeStatus(
            name=node.name,
            state=row.state if row else "absent",
            detail=f"elastic; Slurm: {slurm}" + (f"; {row.detail}" if row and row.detail else ""),
            elastic=True,
        )
    return list(by_name.values())
