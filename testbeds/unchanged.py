"""The no-op `up`: when everything the playbook would read is exactly what the instance's
last successful `up` read, and every unit that run left running still runs on every node,
running the roles again would change nothing, so `up` skips them.

After a successful configuration each node records, under /var/lib/wp5-testbeds, the
digest of the run's inputs and the units then running (services, sockets, timers; not
users' sessions or jobs). Before the next configuration every node is probed with one
command: a node whose record is missing or older, or whose recorded units are not all
running (a killed slurmd, say), makes the run a full one, which heals it. The record is
removed before a full run starts, so a run stopped half-way never leaves one behind.
`testbed up --full` always runs every role (the idempotence checks use it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra

from testbeds import paths
from testbeds.digests import tree_digest
from testbeds.model.plan import Plan
from testbeds.nodes import ProvisionedNode
from testbeds.state import StateDir

RECORD_DIR = "/var/lib/wp5-testbeds"
INPUTS_FILE = f"{RECORD_DIR}/configured-inputs"
UNITS_FILE = f"{RECORD_DIR}/running-units"
# Units that come and go with people and jobs, not with the configuration.
TRANSIENT_UNITS = r"^(run-|session-|user@|user-runtime-dir@|wp5-job|slurmstepd)"
HEALTHY = "all recorded units running"
# Where the testbed_ca role keeps each node's key and certificate, under the secrets folder.
CA_HOSTS = Path("ca/hosts")
# The package's files roles copy to nodes (their `*_code_dir`, the definitions' seed_dir).
NODE_CODE = ("__init__.py", "pipeline_file.py", "nodeside", "samples")

PROBE = f"""\
cat {INPUTS_FILE} 2>/dev/null || echo none
if [ -s {UNITS_FILE} ] && ! systemctl is-active $(cat {UNITS_FILE}) | grep -qvx active; then
  echo '{HEALTHY}'
else
  for unit in $(cat {UNITS_FILE} 2>/dev/null); do
    systemctl is-active --quiet "$unit" || printf '%s ' "$unit"
  done
  echo 'not running'
fi
"""
# A running oneshot service (what a timer starts, say) is on its way out: not recorded.
RECORD = f"""\
set -e
mkdir -p -m 0755 {RECORD_DIR}
{{
  for unit in $(systemctl list-units --no-legend --plain --type=service --state=running \\
                | awk '{{print $1}}'); do
    [ "$(systemctl show -p Type --value "$unit")" = oneshot ] || echo "$unit"
  done
  systemctl list-units --no-legend --plain --type=socket --state=listening | awk '{{print $1}}'
  systemctl list-units --no-legend --plain --type=timer --state=waiting | awk '{{print $1}}'
}} | grep -Ev '{TRANSIENT_UNITS}' | sort > {UNITS_FILE}.new
mv {UNITS_FILE}.new {UNITS_FILE}
"""

Run = Callable[[ProvisionedNode, str], Any]


@dataclass(frozen=True)
class NodeRecord:
    """What one node says of its last successful configuration."""

    node: str
    inputs: str
    healthy: bool
    detail: str


def configuration_inputs(plan: Plan, state: StateDir) -> str:
    """Digest of everything the playbook reads for this instance: the roles, playbooks,
    plugins, the package's code roles copy to nodes, and Ansible settings, the site's and
    the instance's inventories (the plan's
    values and nodes), the instance's secrets, and the versions of the tools."""
    inventories = paths.inventories_dir()
    parts = {
        "roles": tree_digest(paths.roles_dir()),
        "playbooks": tree_digest(paths.PLAYBOOKS_DIR),
        "plugins": tree_digest(paths.PACKAGE_DIR / "ansible_plugins"),
        "node code": {name: tree_digest(paths.PACKAGE_DIR / name) for name in NODE_CODE},
        "ansible.cfg": tree_digest(paths.ANSIBLE_CONFIG),
        "sites": {s: tree_digest(inventories / s) for s in ("common", plan.site.name)},
        "inventory": tree_digest(state.inventory_file),
        "secrets": tree_digest(state.secrets_dir, elastic_host_material(plan)),
        "tools": {name: _version(name) for name in ("wp5-testbeds", "ansible-core", "mitogen")},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def elastic_host_material(plan: Plan) -> Callable[[Path], bool]:
    """Whether a file of the secrets folder is an elastic node's host key or certificate:
    the node broker issues them when it starts the node, between two `up`s, and they are
    not an input of the static nodes' configuration (an `up` does not configure elastic
    nodes), so they must not make the next `up` a full one."""
    elastic = frozenset(node.name for node in plan.elastic_nodes)

    def leave_out(relative: Path) -> bool:
        return relative.parent == CA_HOSTS and relative.stem in elastic

    return leave_out


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def run_on_node(node: ProvisionedNode, command: str) -> Any:
    """The command's result on the node, over the connection the checks use."""
    return testinfra.get_host(node.testinfra_uri).run(command)


def _each(nodes: Iterable[ProvisionedNode], job: Callable[[ProvisionedNode], Any]) -> list[Any]:
    nodes = list(nodes)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(nodes)))) as pool:
        return list(pool.map(job, nodes))


def probe(nodes: list[ProvisionedNode], run: Run = run_on_node) -> list[NodeRecord]:
    def one(node: ProvisionedNode) -> NodeRecord:
        try:
            out = run(node, PROBE)
        except Exception as error:  # an unreachable node: configure it (and so see why)
            return NodeRecord(node.name, "", False, f"unreachable: {error}")
        lines = out.stdout.splitlines() if out.rc == 0 else []
        if len(lines) < 2:
            return NodeRecord(node.name, "", False, (out.stderr or out.stdout).strip()[-200:])
        return NodeRecord(node.name, lines[0].strip(), lines[-1].strip() == HEALTHY, lines[-1])

    return _each(nodes, one)


def unchanged(records: list[NodeRecord], inputs: str) -> tuple[bool, str]:
    """Whether every node's record is of these inputs and healthy, and if not, why."""
    if not records:
        return False, "no nodes"
    for record in records:
        if record.inputs != inputs:
            return False, f"{record.node}: configured from other inputs (or never)"
        if not record.healthy:
            return False, f"{record.node}: {record.detail}"
    return True, "unchanged"


def forget(nodes: list[ProvisionedNode], run: Run = run_on_node) -> None:
    """Remove the record before a full run, so that a run stopped half-way leaves none."""
    _each(nodes, lambda node: run(node, f"rm -f {INPUTS_FILE}"))


def record(nodes: list[ProvisionedNode], inputs: str, run: Run = run_on_node) -> list[str]:
    """Record a successful configuration on every node; returns the nodes that could not."""

    def one(node: ProvisionedNode) -> str:
        done = run(node, RECORD + f"echo {inputs} > {INPUTS_FILE}\n")
        return "" if done.rc == 0 else node.name

    return [name for name in _each(nodes, one) if name]
