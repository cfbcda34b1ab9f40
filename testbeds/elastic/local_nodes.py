"""Elastic nodes on the local target: a resume starts the node's container from its group's
baked image on the instance's network and runs the roles' instance-only steps on it alone
(the install steps are in the image); a suspend removes the container."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace

from testbeds.errors import DeployError
from testbeds.instance import generated_vars
from testbeds.inventory import inventory_sources, render_inventory
from testbeds.model.plan import Plan, PlannedNode, resolve
from testbeds.nodes import ProvisionedNode, read_nodes
from testbeds.playbook import SITE_PLAYBOOK
from testbeds.progress import say
from testbeds.runner import PlaybookResult, run_playbook
from testbeds.state import StateDir
from testbeds.targets.local import podman
from testbeds.targets.local.baked import install_tags
from testbeds.targets.local.broker_service import elastic_node_dir
from testbeds.targets.local.elastic_status import controller_container
from testbeds.targets.local.names import container_name
from testbeds.targets.local.target import LocalTarget


class LocalNodes:
    """The elastic nodes of one local instance, as the node broker starts and removes them."""

    def __init__(self, instance: str) -> None:
        self.state = StateDir(instance)
        record = self.state.read_record()
        self.plan = resolve(
            record.definition, site=record.site, target=record.target, instance=instance
        )
        self.target = LocalTarget()
        self.planned = {node.name: node for node in self.plan.elastic_nodes}
        self.elastic_nodes = frozenset(self.planned)
        self.controller = controller_container(self.plan)
        self._uid: int | None = None
        self._running_lock = threading.Lock()
        # Nodes an earlier broker of this instance started are still up: watch them too.
        self.running = {node for node in self.elastic_nodes if self._container_runs(node)}

    def allowed_uid(self) -> int | None:
        if self._uid is None:
            proc = podman.exec_(self.controller, "id", "-u", "slurm", timeout=15)
            if proc.returncode == 0 and proc.stdout.strip().isdigit():
                self._uid = int(proc.stdout.strip())
        return self._uid

    def resume(self, node: str) -> None:
        planned = self.planned[node]
        started = self.target.start_elastic_node(self.plan, self.state, planned)
        # A node started again has a new address: slurmctld must send there, not to the
        # address it kept from the node's last start.
        self.slurm_update(node, f"nodeaddr={started.address}", f"nodehostname={node}")
        say(f"[{node}] container up at {started.address}; configuring")
        result = configure_elastic_node(self.plan, self.state, planned, started)
        if not result.ok:
            raise DeployError(result.failures[0] if result.failures else result.status)
        with self._running_lock:
            self.running.add(node)

    def remove(self, node: str) -> None:
        with self._running_lock:
            self.running.discard(node)
        if self.target.remove_elastic_node(self.plan.instance, node):
            say(f"[{node}] container removed")
        shutil.rmtree(elastic_node_dir(self.state, node), ignore_errors=True)

    def slurm_update(self, node: str, *settings: str) -> None:
        """`scontrol update` of the node on the controller; raises if Slurm refuses."""
        proc = podman.exec_(
            self.controller, "scontrol", "update", f"nodename={node}", *settings, timeout=30
        )
        if proc.returncode != 0:
            raise DeployError(f"scontrol update {node} {' '.join(settings)}: {proc.stderr.strip()}")

    def mark_down(self, node: str, reason: str) -> None:
        try:
            self.slurm_update(node, "state=DOWN", f"reason={reason}")
        except DeployError as error:
            say(f"[{node}] could not mark it DOWN in Slurm: {error}")

    def vanished(self) -> list[str]:
        with self._running_lock:
            watched = sorted(self.running)
        return [node for node in watched if not self._container_runs(node)]

    def _container_runs(self, node: str) -> bool:
        found = podman.container_by_name(container_name(self.plan.instance, node))
        return found is not None and found.get("State") == "running"


def configure_elastic_node(
    plan: Plan, state: StateDir, planned: PlannedNode, node: ProvisionedNode
) -> PlaybookResult:
    """The site playbook on this node alone, with an inventory of the static nodes and it:
    the roles' instance-only steps (secrets, certificates, identities, services)."""
    folder = elastic_node_dir(state, node.name)
    static = read_nodes(state.nodes_file)
    with_node = replace(plan, nodes=(*plan.nodes, planned))
    inventory = folder / "hosts.yml"
    values = generated_vars(plan, state, LocalTarget())
    inventory.write_text(render_inventory(with_node, [*static, node], values), encoding="utf-8")
    return run_playbook(
        SITE_PLAYBOOK,
        inventory_sources(plan.site.name, inventory),
        folder / "runner",
        forks=1,
        limit=node.name,
        skip_tags=install_tags(planned.roles),
        baked_hosts=frozenset({node.name}),
    )
