"""Node-local scratch (NVMe/SSD; a tmpfs on the local target, labelled "emulated NVMe"): Slurm
advertises its size, each job gets its own directory there, gone once the job ends."""

from __future__ import annotations

import re

import pytest

from testbeds.checks.helpers import wait_for


def scratch_nodes(testbed) -> list[str]:
    nodes = [n for n in testbed.group("slurm_compute") if testbed.traits(n).get("scratch")]
    if not nodes:
        pytest.skip("no compute node of this testbed declares node-local scratch")
    return nodes


def test_slurm_advertises_the_scratch_size(testbed):
    """scontrol shows TmpDisk = the declared size on every node with scratch, and the
    cluster's TmpFS is the declared path."""
    login = testbed.host(testbed.group("slurm_login")[0])
    for name in scratch_nodes(testbed):
        scratch = testbed.traits(name)["scratch"]
        info = login.check_output(f"scontrol show node {name}")
        assert f"TmpDisk={scratch['size_gb'] * 1024}" in info, info
    config = login.check_output("scontrol show config")
    assert re.search(rf"^TmpFS\s+= {re.escape(scratch['path'])}$", config, re.M), config


def test_job_gets_its_own_scratch_directory_removed_afterwards(testbed, user_shell):
    """A job on a scratch node finds its own directory in the environment (and in TMPDIR,
    and as OpenMPI's shared-memory folder), private to its user, writes and reads a file
    there; after the job the directory is gone."""
    name = scratch_nodes(testbed)[0]
    scratch = testbed.traits(name)["scratch"]
    variable = testbed.value("slurm_compute_scratch_variable")
    partition = testbed.node(name).group
    login = testbed.host(testbed.group("slurm_login")[0])
    script = (
        f'd="${variable}"; echo "dir=$d tmpdir=$TMPDIR mpi=$OMPI_MCA_btl_vader_backing_directory"; '
        'echo payload > "$d/probe"; '
        'echo "read=$(cat "$d/probe")"; echo "perm=$(stat -c %U:%a "$d")"'
    )
    out = user_shell(login, f"srun -p {partition} -w {name} --tmp=100M bash -c '{script}'")
    assert out.rc == 0, out.stdout + out.stderr
    fields = dict(word.split("=", 1) for word in out.stdout.split() if "=" in word)
    directory = fields.get("dir", "")
    assert re.fullmatch(rf"{re.escape(scratch['path'])}/job_\d+", directory), out.stdout
    assert fields["tmpdir"] == directory
    assert fields["mpi"] == directory
    assert fields["read"] == "payload"
    assert fields["perm"] == f"{testbed.research_user}:700"
    node = testbed.host(name)
    assert wait_for(lambda: not node.file(directory).exists, timeout=30), (
        f"{directory} still exists on {name} after the job"
    )


def test_job_asking_for_more_scratch_than_any_node_has_is_refused(testbed, user_shell):
    """--tmp larger than every node's TmpDisk is refused at submission."""
    largest = max(testbed.traits(n)["scratch"]["size_gb"] for n in scratch_nodes(testbed))
    login = testbed.host(testbed.group("slurm_login")[0])
    out = user_shell(login, f"sbatch --tmp={largest + 1}G --wrap true")
    assert out.rc != 0
    assert "Requested node configuration is not available" in out.stderr
