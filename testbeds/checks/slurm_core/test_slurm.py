"""Slurm: daemons up, every compute node schedulable, a batch job spanning two nodes completes."""

from __future__ import annotations

import re

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for


@pytest.mark.nodes("slurm_controller")
def test_slurmctld_running(host):
    """slurmctld is active and enabled on the controller."""
    assert_service_running(host, "slurmctld")


@pytest.mark.nodes("slurm_compute")
def test_slurmd_running(host):
    """slurmd is active and enabled on every compute node."""
    assert_service_running(host, "slurmd")


# A node running jobs is as healthy as an idle one: verify must pass on a busy cluster, and
# while other checks hold a node. These flags take a node out of service.
SCHEDULABLE_STATES = {"IDLE", "MIXED", "ALLOCATED"}
OUT_OF_SERVICE_FLAGS = {"DRAIN", "NOT_RESPONDING", "FAIL", "MAINTENANCE", "INVALID_REG"}


def node_state(show_node: str) -> tuple[str, set[str]]:
    """(base state, flags) from one line of `scontrol show node -o`, e.g. IDLE+DRAIN."""
    match = re.search(r"\bState=(\S+)", show_node)
    if match is None:
        return "", set()
    base, *flags = match.group(1).split("+")
    return base, set(flags)


@pytest.mark.nodes("slurm_compute")
def test_compute_node_schedulable(testbed, node):
    """scontrol, asked on the login node, shows this compute node in service: idle, or running
    jobs, and neither down, drained nor unresponsive."""
    login = testbed.host(testbed.group("slurm_login")[0])

    def show() -> str:
        return login.run(f"scontrol show node -o {node}").stdout.strip()

    def schedulable() -> bool:
        base, flags = node_state(show())
        return base in SCHEDULABLE_STATES and not flags & OUT_OF_SERVICE_FLAGS

    assert wait_for(schedulable, timeout=60), (
        f"{node} is not in service: {show()}\njobs there: "
        + login.run(f"squeue -w {node} -o '%i %u %T %M %j'").stdout
    )


@pytest.mark.nodes("slurm_compute")
def test_compute_node_cpus_follow_traits_and_emulation_is_labelled(testbed, node):
    """Slurm schedules the CPUs the node's traits give it, times the site's emulation factor;
    emulated CPUs (a factor above 1) carry the feature emulated_cpus, real ones do not."""
    login = testbed.host(testbed.group("slurm_login")[0])
    shown = login.run(f"scontrol show node -o {node}").stdout
    factor = int(testbed.value("slurm_emulated_cpu_factor"))
    cpus = re.search(r"\bCPUTot=(\d+)", shown)
    assert cpus, shown
    assert int(cpus.group(1)) == int(testbed.traits(node).get("cpus", 1)) * factor, shown
    features = re.search(r"\bAvailableFeatures=(\S*)", shown)
    assert features, shown
    assert ("emulated_cpus" in features.group(1).split(",")) == (factor > 1), shown


def test_batch_job_spans_two_nodes(testbed):
    """An sbatch job asking for two nodes completes, and its output names both nodes."""
    compute = testbed.group("slurm_compute")
    if len(compute) < 2:
        pytest.skip("the testbed has fewer than two compute nodes")
    login = testbed.host(testbed.group("slurm_login")[0])
    out = "/tmp/testbed-check-%j.out"
    job = login.run(f"sbatch --parsable --wait -N2 -t 2 -o {out} --wrap 'srun hostname'")
    job_id = job.stdout.strip().split(";")[0]
    assert job.rc == 0 and job_id.isdigit(), f"sbatch said {job.stdout!r} {job.stderr!r}"
    info = login.check_output(f"scontrol show job {job_id}")
    assert "JobState=COMPLETED" in info, info
    batch_host = re.search(r"BatchHost=(\S+)", info)
    assert batch_host, info
    output = testbed.host(batch_host.group(1)).file(out.replace("%j", job_id)).content_string
    names = set(output.split())
    assert len(names) == 2 and names <= set(compute), f"job ran on {sorted(names)}"
