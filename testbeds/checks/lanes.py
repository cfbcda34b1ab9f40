"""Lanes: which checks `testbed verify` runs one after another, and in what order the lanes start.

Checks of one node form a lane of their own; the testbed-wide checks (jobs, transfers,
pipelines) form lanes by what they share. pytest-xdist's `loadgroup` gives each lane to one
worker, and a worker takes the next lane when it is done with its own, so the longest lane
should start first: lanes are ordered by how long they took in the instance's last report
(the longest first), and lanes the report does not know start before the per-node lanes
(testbed-wide lanes are the long ones)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pytest
from xdist.scheduler import LoadGroupScheduling
from xdist.workermanage import WorkerController

from testbeds.check_times import CheckKey

# The data suites move data and tokens and touch no Slurm partition: one lane. The pipelines
# and the composition's scenarios push to one repository: one lane. Each hpc_services
# module is a workload of its own on the cluster (jobs of other lanes only queue behind it):
# a lane each.
SHARED_LANES = {
    "tokens": "data",
    "storage_endpoints": "data",
    "data_management": "data",
    "pipelines": "pipelines",
    "composition": "pipelines",
}
PER_MODULE_SUITES = frozenset({"hpc_services"})
# Modules of a shared suite that share nothing with it: the composition's data-to-HPC checks
# push nothing to the pipelines' repository (Rucio rules and Slurm jobs: with the data).
MODULE_LANES = {("composition", "test_data_to_hpc"): "data"}


def lane(item: pytest.Item) -> str:
    """The lane of one check: its node's, or its suite's (or its module's)."""
    params = getattr(item, "callspec", None)
    node = params.params.get("node") if params is not None else None
    if node:
        return f"node-{node}"
    suite = item.path.parent.name
    if suite in PER_MODULE_SUITES:
        return f"testbed-{suite}-{item.path.stem}"
    shared = MODULE_LANES.get((suite, item.path.stem)) or SHARED_LANES.get(suite, suite)
    return f"testbed-{shared}"


def report_key(nodeid: str) -> tuple[str, str]:
    """A check's (classname, name) in a JUnit report, from its pytest node id
    (`hpc_services/test_htc.py::test_x[p]` -> `hpc_services.test_htc`, `test_x[p]`)."""
    path, _, name = nodeid.partition("::")
    return path.removesuffix(".py").replace("/", "."), name


def longest_first(
    items: Sequence[pytest.Item], lanes: Sequence[str], last: dict[CheckKey, float]
) -> list[int]:
    """The order (indices into items) that starts the lanes longest first: by their summed
    time in the last report; lanes it does not know come before the per-node lanes it does
    not know. Checks keep their order within a lane."""
    seconds: dict[str, float] = defaultdict(float)
    known: set[str] = set()
    for item, name in zip(items, lanes, strict=True):
        key = report_key(item.nodeid)
        if key in last:
            seconds[name] += last[key]
            known.add(name)
    first_seen = {name: index for index, name in reversed(list(enumerate(lanes)))}

    def rank(name: str) -> tuple[int, float, int]:
        if name in known:
            return (1, -seconds[name], first_seen[name])
        return (0 if name.startswith("testbed-") else 2, 0.0, first_seen[name])

    return sorted(range(len(items)), key=lambda index: (rank(lanes[index]), index))


class LaneAtATime(LoadGroupScheduling):
    """pytest-xdist's loadgroup, except that a worker is given its next lane only when its
    current lane is down to its last check (a worker runs a check only once it knows the one
    after it, so it must hold one more). Stock loadgroup tops a worker up whenever it has
    two checks or fewer in hand: lanes then queue behind a long single-check lane (Spark's)
    on one worker while other workers have nothing left to do."""

    def _reschedule(self, node: WorkerController) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        self._assign_work_unit(node)
