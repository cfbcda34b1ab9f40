"""Users and shared storage: same account everywhere, /home and /shared shared by every node."""

from __future__ import annotations

import uuid

import pytest

from testbeds.checks.helpers import wait_for


@pytest.mark.nodes("users")
def test_research_user_same_ids_everywhere(testbed, host):
    """The research user exists with the same UID and GID on every node."""
    user = host.user(testbed.research_user)
    assert user.exists
    assert (user.uid, user.gid) == (2001, 2001)
    assert user.home == f"/home/{testbed.research_user}"


@pytest.mark.nodes("users")
@pytest.mark.parametrize("path", ["/home", "/shared"])
def test_shared_filesystem_present(host, path):
    """Every node has the shared filesystems."""
    assert host.file(path).is_directory


def test_file_written_by_job_on_one_node_read_on_another(testbed, user_shell):
    """A job on one compute node writes a file; a job on another and the login node read it."""
    cpu = [n for n in testbed.group("slurm_compute") if n.startswith("cpu")]
    assert len(cpu) >= 2
    login = testbed.host(testbed.group("slurm_login")[0])
    token = uuid.uuid4().hex
    path = f"/home/{testbed.research_user}/shared-check-{token}"
    write = user_shell(login, f"srun -w {cpu[0]} -N1 sh -c 'echo {token} $(hostname) > {path}'")
    assert write.rc == 0, write.stderr
    read = user_shell(login, f"srun -w {cpu[1]} -N1 cat {path}")
    assert read.rc == 0, read.stderr
    assert read.stdout.split() == [token, cpu[0]]
    assert login.file(path).content_string.split() == [token, cpu[0]]
    user_shell(login, f"rm -f {path}")


def test_user_reaches_a_compute_node_over_ssh_only_with_a_job_there(testbed, user_shell):
    """The research user's ssh from the login node to a compute node is refused while the
    user has no job there (pam_slurm), and gets in while one runs, host keys checked."""
    login = testbed.host(testbed.group("slurm_login")[0])

    def ssh_to(node: str) -> str:
        return (
            f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 {node} "
            "hostname"
        )

    def nodes_with_a_job() -> set[str]:
        # Other checks run the same user's jobs side by side: only a node where the user
        # has no job before and after the attempt says anything.
        listed = user_shell(login, "squeue -h -t RUNNING,COMPLETING -u $USER -o %N").stdout
        names = user_shell(login, f"scontrol show hostnames {','.join(listed.split())}")
        return set(names.stdout.split()) if listed.split() else set()

    def refused_somewhere() -> bool:
        free = [n for n in testbed.group("slurm_compute") if n not in nodes_with_a_job()]
        if not free:
            return False
        attempt = user_shell(login, ssh_to(free[0]))
        if free[0] in nodes_with_a_job():
            return False  # a job started meanwhile: try again
        assert attempt.rc != 0 and free[0] not in attempt.stdout, (free[0], attempt.stdout)
        return True

    assert wait_for(refused_somewhere, timeout=120, interval=3), "no compute node free of jobs"
    # Any compute node: the other lanes' jobs may hold one of them for minutes.
    submitted = user_shell(login, "sbatch --parsable -N1 -t 3 --wrap 'sleep 150'")
    assert submitted.rc == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    try:
        assert wait_for(
            lambda: user_shell(login, f"squeue -h -j {job} -o %T").stdout.strip() == "RUNNING",
            timeout=240,
        ), user_shell(login, f"squeue -h -j {job} -o '%T %r'").stdout
        target = user_shell(login, f"squeue -h -j {job} -o %N").stdout.strip()
        assert target in testbed.group("slurm_compute"), target
        out = user_shell(login, ssh_to(target))
    finally:
        user_shell(login, f"scancel {job}")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == target
