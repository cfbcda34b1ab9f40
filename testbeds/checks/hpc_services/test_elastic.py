"""Elastic nodes: jobs waiting in an elastic group's partition make Slurm start nodes
(ResumeProgram), which run them as the static nodes would (the user from the directory,
the shared home, accounting), and once idle the nodes are removed (SuspendProgram).

One lane: the second check waits for the nodes the first one started to go."""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime

import pytest

from testbeds.checks.helpers import wait_for
from testbeds.elastic.slurm_states import SlurmNodeState, parse_sinfo, sinfo_arguments

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
    accounting. The time from submission to each job's start is reported."""
    partition, nodes = elastic
    login = testbed.host(testbed.group("slurm_login")[0])
    user = testbed.research_user
    marker = f"elastic-{time.time_ns()}"
    written = user_shell(login, f"echo {marker} > ~/{marker}")
    assert written.rc == 0, written.stderr
    script = f"hostname; id -un; cat ~/{marker}"
    jobs = []
    for _ in range(2):
        sub = user_shell(
            login,
            f"sbatch --parsable --exclusive -N1 -p {partition} -t 5 "
            f"-o ~/{marker}-%j.out --wrap '{script}'",
        )
        job_id = sub.stdout.strip().split(";")[0]
        assert sub.rc == 0 and job_id.isdigit(), f"sbatch said {sub.stdout!r} {sub.stderr!r}"
        jobs.append(job_id)
    bound_s = config_seconds(login, "ResumeTimeout") + MARGIN_S
    try:

        def finished() -> bool:
            return not login.run(f"squeue -h -j {','.join(jobs)} -o %i").stdout.split()

        assert wait_for(finished, timeout=bound_s, interval=2), (
            f"jobs {jobs} still queued after {bound_s} s: "
            + login.run(f"squeue -j {','.join(jobs)} -o '%i %T %r %N'").stdout
            + login.run(f"sinfo -N -n {','.join(nodes)} -o '%N %T %E'").stdout
        )
    finally:
        login.run(f"scancel {' '.join(jobs)}")

    def accounted() -> list[list[str]]:
        out = login.run(
            f"sacct -n -P -X -j {','.join(jobs)} --format=JobID,State,NodeList,Submit,Start"
        )
        return [line.split("|") for line in out.stdout.split()]

    assert wait_for(lambda: len(accounted()) == 2, timeout=60), accounted()
    records = accounted()
    assert all(state == "COMPLETED" for _, state, *_ in records), records
    ran_on = sorted(record[2] for record in records)
    assert len(set(ran_on)) == 2 and set(ran_on) <= set(nodes), f"ran on {ran_on}"
    for job_id in jobs:
        output = login.file(f"/home/{user}/{marker}-{job_id}.out").content_string.split()
        assert output[1:] == [user, marker] and output[0] in nodes, output
    waits = {
        node: (datetime.fromisoformat(start) - datetime.fromisoformat(submit)).total_seconds()
        for _, _, node, submit, start in records
    }
    record_property(
        "elastic_start_s",
        "; ".join(f"{node} {seconds:.0f} s" for node, seconds in sorted(waits.items()))
        + " from submission to the job running (2 nodes started at once)",
    )
    user_shell(login, f"rm -f ~/{marker} ~/{marker}-*.out")


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
