"""Accounting: slurmdbd with MariaDB records finished jobs."""

from __future__ import annotations

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for


@pytest.mark.nodes("slurm_dbd")
@pytest.mark.parametrize("unit", ["mariadb", "slurmdbd"])
def test_accounting_services_running(host, unit):
    """MariaDB and slurmdbd are active and enabled on the accounting node."""
    assert_service_running(host, unit)


@pytest.mark.nodes("slurm_dbd")
def test_database_password_not_world_readable(host):
    """slurmdbd.conf holds the generated database password: slurm may read it, nobody else."""
    conf = host.file("/etc/slurm/slurmdbd.conf")
    assert conf.user == "slurm"
    assert conf.mode == 0o600


def test_cluster_registered(testbed):
    """The cluster is registered in the accounting database."""
    login = testbed.host(testbed.group("slurm_login")[0])
    clusters = login.check_output("sacctmgr --noheader --parsable2 show cluster format=cluster")
    assert clusters.strip(), "no cluster registered in accounting"


def test_finished_job_in_sacct(testbed, user_shell):
    """A job run as the research user shows up in sacct as COMPLETED with the node it ran on."""
    login = testbed.host(testbed.group("slurm_login")[0])
    job = user_shell(login, "sbatch --parsable -N1 -t 1 -o /dev/null --wrap hostname")
    job_id = job.stdout.strip().split(";")[0]
    assert job.rc == 0 and job_id.isdigit(), f"sbatch said {job.stdout!r} {job.stderr!r}"

    def record() -> str:
        out = login.run(f"sacct -n -P -X -j {job_id} --format=State,NodeList,User")
        return out.stdout.strip()

    # slurmctld sends the record to slurmdbd in steps; the user name can lag the state.
    expected_tail = f"|{testbed.research_user}"
    assert wait_for(
        lambda: record().startswith("COMPLETED|") and record().endswith(expected_tail), timeout=60
    ), f"job {job_id}: sacct shows {record()!r}"
    final = record()
    state, nodelist, user = final.splitlines()[0].split("|")
    assert state == "COMPLETED", final
    assert nodelist in testbed.group("slurm_compute")
    assert user == testbed.research_user, f"job {job_id}: {final!r}"
