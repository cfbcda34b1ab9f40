"""Elastic nodes: jobs waiting in an elastic group's partition make Slurm start nodes
(ResumeProgram), which run them as the static nodes would (the user from the directory,
the shared filesystems, munge, the time zone, Slurm's version, the Lmod modules and
accounting, compared line for line with a job on a static compute node), and once idle the
nodes are removed (SuspendProgram).

One lane: the second check waits for the nodes the first one started to go."""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime

import pytest

from testbeds.checks.helpers import wait_for
from testbeds.slurm_states import SlurmNodeState, parse_sinfo, sinfo_arguments

# What a start may take on top of Slurm's ResumeTimeout before the check gives up.
MARGIN_S = 60


def elastic_groups(testbed) -> dict[str, list[str]]:
    return {
        group["name"]: group["elastic_nodes"]
        for group in testbed.plan.get("node_groups", [])
        if group.get("elastic_nodes")
    }


@pytest.fixture(scope="module")
def elastic(testbed) -> tuple[str, list[str]]:
    """The first elastic group (its partition) and its nodes; the check skips without one."""
    groups = elastic_groups(testbed)
    if not groups:
        pytest.skip("the testbed has no elastic node group")
    name = next(iter(groups))
    return name, groups[name]


def node_view(shared_paths: list[str]) -> list[str]:
    """What a node looks like to a job, one line (or block) each: the same on every compute
    node of the testbed, so an elastic node's answer must equal a static node's."""
    return [
        "id",  # the user and their project groups, from the directory through SSSD
        "date +%Z",
        *(f"findmnt -n -o SOURCE,FSTYPE --target {shlex.quote(path)}" for path in shared_paths),
        "munge -n | unmunge | grep '^STATUS:'",  # the instance's munge key
        "/usr/sbin/slurmd -V",
        "module -t avail 2>&1 | sort",  # Lmod and the MPI module
    ]


def static_reference(testbed, login, elastic_roles: set[str]) -> tuple[str, str]:
    """The static compute node with every role of the elastic group and the fewest others
    (a role such as `analysis` adds a module of its own), and a partition of it."""
    candidates = [
        testbed.node(name)
        for name in testbed.group("slurm_compute")
        if elastic_roles <= set(testbed.node(name).roles)
    ]
    if not candidates:
        pytest.fail(f"no static compute node has the elastic group's roles {sorted(elastic_roles)}")
    name = min(candidates, key=lambda node: len(node.roles)).name
    partitions = login.check_output(f"sinfo -h -N -n {name} -o %P").split()
    return name, partitions[0].rstrip("*")


# Job states in accounting before the job's end has reached slurmdbd.
UNSETTLED = frozenset({"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED"})


def slurm_states(login, nodes: list[str]) -> dict[str, SlurmNodeState]:
    return parse_sinfo(login.run(shlex.join(["sinfo", *sinfo_arguments(nodes)])).stdout)


def config_seconds(login, key: str) -> int:
    shown = login.check_output("scontrol show config")
    found = re.search(rf"^{key}\s*=\s*(\d+)", shown, re.MULTILINE)
    assert found, f"{key} is not in Slurm's configuration"
    return int(found.group(1))


def test_two_waiting_jobs_start_two_elastic_nodes_and_run_there(
    testbed, elastic, user_shell, record_property
):
    """Two jobs, each wanting a whole node of the elastic partition, submitted at once as
    the research user: Slurm starts two nodes and each job runs on its own, as that user,
    reading a file the user wrote in the shared home on the login node; both are in
    accounting, and each node looks to its job exactly as a static compute node looks to
    the same job script (`node_view`). The time from submission to each job's start is
    reported."""
    partition, nodes = elastic
    login = testbed.host(testbed.group("slurm_login")[0])
    user = testbed.research_user
    marker = f"elastic-{time.time_ns()}"
    elastic_roles = next(
        set(group["roles"]) for group in testbed.plan["node_groups"] if group["name"] == partition
    )
    shared_paths = [fs["path"] for fs in testbed.plan["shared_filesystems"]]
    view = "\n".join(node_view(shared_paths))
    script = f"#!/bin/bash -l\nhostname\nid -un\ncat ~/{marker}\n{view}\n"
    written = user_shell(
        login, f"echo {marker} > ~/{marker} && printf %s {shlex.quote(script)} > ~/{marker}.sh"
    )
    assert written.rc == 0, written.stderr

    def submit(*options: str) -> str:
        sub = user_shell(
            login,
            shlex.join(["sbatch", "--parsable", *options, "-t", "5"])
            + f" -o ~/{marker}-%j.out ~/{marker}.sh",
        )
        job_id = sub.stdout.strip().split(";")[0]
        assert sub.rc == 0 and job_id.isdigit(), f"sbatch said {sub.stdout!r} {sub.stderr!r}"
        return job_id

    static_node, static_partition = static_reference(testbed, login, elastic_roles)
    reference = submit("-N1", "-n1", "--mem=50M", "-p", static_partition, "-w", static_node)
    jobs = [submit("--exclusive", "-N1", "-p", partition) for _ in range(2)]
    bound_s = config_seconds(login, "ResumeTimeout") + MARGIN_S
    try:

        def finished() -> bool:
            waiting = f"squeue -h -j {','.join([reference, *jobs])} -o %i"
            return not login.run(waiting).stdout.split()

        assert wait_for(finished, timeout=bound_s, interval=2), (
            f"jobs {jobs} still queued after {bound_s} s: "
            + login.run(f"squeue -j {','.join(jobs)} -o '%i %T %r %N'").stdout
            + login.run(f"sinfo -N -n {','.join(nodes)} -o '%N %T %E'").stdout
        )
    finally:
        login.run(f"scancel {reference} {' '.join(jobs)}")

    def accounted() -> list[list[str]]:
        out = login.run(
            f"sacct -n -P -X -j {','.join(jobs)} --format=JobID,State,NodeList,Submit,Start"
        )
        return [line.split("|") for line in out.stdout.split()]

    # slurmctld tells slurmdbd of a job's end after the job has left the queue: on a busy
    # machine accounting may still say RUNNING for a while.
    def settled() -> bool:
        records = accounted()
        return len(records) == 2 and all(state not in UNSETTLED for _, state, *_ in records)

    assert wait_for(settled, timeout=60), accounted()
    records = accounted()
    assert all(state == "COMPLETED" for _, state, *_ in records), records
    ran_on = sorted(record[2] for record in records)
    assert len(set(ran_on)) == 2 and set(ran_on) <= set(nodes), f"ran on {ran_on}"

    def job_output(job_id: str) -> list[str]:
        return login.file(f"/home/{user}/{marker}-{job_id}.out").content_string.splitlines()

    static_view = job_output(reference)
    assert static_view[:3] == [static_node, user, marker], static_view
    assert any(line.startswith("STATUS:") and "Success" in line for line in static_view)
    for job_id in jobs:
        output = job_output(job_id)
        assert output[1:3] == [user, marker] and output[0] in nodes, output
        assert output[3:] == static_view[3:], (
            f"{output[0]} looks otherwise to a job than the static node {static_node}: "
            f"{output[3:]} against {static_view[3:]}"
        )
    waits = {
        node: (datetime.fromisoformat(start) - datetime.fromisoformat(submit)).total_seconds()
        for _, _, node, submit, start in records
    }
    record_property(
        "elastic_start_s",
        "; ".join(f"{node} {seconds:.0f} s" for node, seconds in sorted(waits.items()))
        + " from submission to the job running (2 nodes started at once)",
    )
    user_shell(login, f"rm -f ~/{marker} ~/{marker}.sh ~/{marker}-*.out")


def test_idle_elastic_nodes_are_removed(testbed, elastic, record_property):
    """Once idle for SuspendTime, every elastic node is powered down again (on the local
    target its container is removed: see the end-to-end test)."""
    _, nodes = elastic
    login = testbed.host(testbed.group("slurm_login")[0])
    bound_s = (
        config_seconds(login, "SuspendTime") + config_seconds(login, "SuspendTimeout") + MARGIN_S
    )
    started = time.monotonic()

    def all_powered_down() -> bool:
        states = slurm_states(login, nodes)
        return len(states) == len(nodes) and all(s.powered_down for s in states.values())

    assert wait_for(all_powered_down, timeout=bound_s, interval=2), slurm_states(login, nodes)
    record_property(
        "elastic_idle_removal_s",
        f"every elastic node powered down {time.monotonic() - started:.0f} s after this "
        "check began (the jobs had ended)",
    )
