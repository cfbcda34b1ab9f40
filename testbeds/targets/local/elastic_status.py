"""Elastic nodes of a local instance as Slurm sees them (for `testbed status`): state and
reason, from sinfo on the instance's controller container."""

from __future__ import annotations

from testbeds.model.plan import Plan, resolve
from testbeds.slurm_states import SlurmNodeState, parse_sinfo, sinfo_arguments
from testbeds.state import StateDir
from testbeds.targets.base import NodeStatus
from testbeds.targets.local import podman
from testbeds.targets.local.names import container_name


def controller_container(plan: Plan) -> str:
    """The container of the plan's Slurm controller (the local target's)."""
    controller = next(n for n in plan.nodes if "slurm_controller" in n.roles)
    return container_name(plan.instance, controller.name)


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
