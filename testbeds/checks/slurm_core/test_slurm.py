"""Slurm: daemons up, every compute node idle, a batch job spanning two nodes completes."""

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


@pytest.mark.nodes("slurm_compute")
def test_compute_node_idle(testbed, node):
    """sinfo, asked on the login node, shows this compute node idle."""
    login = testbed.host(testbed.group("slurm_login")[0])

    def state() -> str:
        return login.run(f"sinfo -h -N -n {node} -o %T").stdout.strip()

    assert wait_for(lambda: state() == "idle", timeout=60), f"{node} is {state()!r}, not idle"


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
