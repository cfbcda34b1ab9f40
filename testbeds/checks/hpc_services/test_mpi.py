"""MPI: OpenMPI over PMIx, launched by srun across two nodes, through the Lmod module."""

from __future__ import annotations

import base64
import json

import pytest

HELLO = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, len; char name[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(name, &len);
    int sum = 0; MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d of %d on %s sum %d\n", rank, size, name, sum);
    MPI_Finalize();
    return 0;
}
"""


def build_hello(user_shell, login, program: str) -> None:
    """Build the MPI hello program as the research user, at `program` (in their home)."""
    source = base64.b64encode(HELLO.encode()).decode()
    build = user_shell(
        login,
        f"echo {source} | base64 -d > {program}.c && module load openmpi "
        f"&& mpicc -O2 -o {program} {program}.c",
    )
    assert build.rc == 0, build.stderr


def test_mpi_module_available(testbed, user_shell):
    """`module load openmpi` works in a login shell and puts mpicc at hand."""
    login = testbed.host(testbed.group("slurm_login")[0])
    out = user_shell(login, "module load openmpi && echo $MPI_HOME && command -v mpicc")
    assert out.rc == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0].endswith("/openmpi") and lines[1].endswith("/mpicc")


def test_mpi_hello_four_ranks_two_hosts(testbed, user_shell):
    """An MPI program built on the login node runs with srun -N2 -n4: 4 ranks on 2 hosts,
    and a collective (allreduce) across them gives the right sum."""
    login = testbed.host(testbed.group("slurm_login")[0])
    home = f"/home/{testbed.research_user}"
    build_hello(user_shell, login, f"{home}/mpi_hello")
    run = user_shell(login, f"cd {home} && srun -p cpu -N2 -n4 --mpi=pmix ./mpi_hello")
    assert run.rc == 0, run.stdout + run.stderr
    lines = sorted(line for line in run.stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == 4, run.stdout
    hosts = {line.split()[5] for line in lines}
    assert len(hosts) == 2, lines
    assert {line.split()[7] for line in lines} == {"6"}  # 0+1+2+3


@pytest.mark.nodes("infiniband")
def test_infiniband_fact_says_which_transport(testbed, host):
    """The infiniband role records whether an HCA exists and which transport MPI uses."""
    fact = json.loads(host.file("/etc/ansible/facts.d/infiniband.fact").content_string)
    hcas = host.run(f"ls {testbed.value('infiniband_sysfs_dir')} 2>/dev/null").stdout.split()
    assert fact["present"] is bool(hcas)
    assert fact["transport"] == ("rdma" if hcas else "tcp")
    mca = host.file("/etc/openmpi/openmpi-mca-params.conf").content_string
    assert ("pml = ucx" in mca) if hcas else ("btl = self,vader,tcp" in mca)
