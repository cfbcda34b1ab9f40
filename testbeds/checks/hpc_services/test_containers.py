"""Containers in jobs: Charliecloud runs an image unprivileged on two nodes at once, with the
user's own identity and /home and /shared bound in, and an MPI program across containers."""

from __future__ import annotations

import pytest

from testbeds.checks.hpc_services.test_mpi import build_hello


@pytest.mark.nodes("charliecloud")
def test_unprivileged_user_namespaces_work(host):
    """ch-checkns, run as an unprivileged user, finds what ch-run needs."""
    out = host.run("runuser -u nobody -- ch-checkns")
    assert out.rc == 0, out.stdout + out.stderr


def test_user_runs_an_image_on_two_nodes(testbed, user_shell):
    """The research user unpacks the sample image tarball into their home and runs it with
    srun on two compute nodes: inside, they are themselves (not root), see the image's own
    files, read /shared and write to /home, and the login node sees what they wrote."""
    login = testbed.host(testbed.group("slurm_login")[0])
    tarball = (
        f"{testbed.value('charliecloud_image_dir')}/"
        f"{testbed.value('charliecloud_sample_image_name')}.tar.gz"
    )
    prepared = user_shell(
        login,
        f"rm -rf ~/images/check ~/.ch-check-* && mkdir -p ~/images/check && "
        f"tar -xzf {tarball} -C ~/images/check && id -u && stat -c %s {tarball}",
    )
    assert prepared.rc == 0, prepared.stderr
    uid, size = prepared.stdout.split()
    inside = (
        f'echo "$(hostname) $(id -u) $(wc -c < {tarball}) $(head -c 24 /etc/wp5-image)"; '
        'echo written > "$HOME/.ch-check-$(hostname)"'
    )
    ran = user_shell(
        login,
        "srun -N2 --ntasks-per-node=1 ch-run -b /home:/home -b /shared:/shared "
        f"~/images/check -- sh -c '{inside}'",
    )
    assert ran.rc == 0, ran.stdout + ran.stderr
    lines = sorted(ran.stdout.strip().splitlines())
    assert len(lines) == 2, ran.stdout
    hosts = {line.split()[0] for line in lines}
    assert len(hosts) == 2 and hosts <= set(testbed.group("slurm_compute")), lines
    for line in lines:
        _, seen_uid, seen_size, *image = line.split()
        assert seen_uid == uid != "0", line
        assert seen_size == size, line  # /shared, as bound into the container
        assert " ".join(image).startswith("wp5-testbeds sample"), line
    for node in hosts:
        written = user_shell(login, f"cat ~/.ch-check-{node}")
        assert written.stdout.strip() == "written", f"nothing from {node} in /home"


def test_mpi_program_in_containers_on_two_nodes(testbed, user_shell):
    """An MPI program built on the login node runs inside the shared MPI image with
    `srun -N2 -n4 --mpi=pmix ch-run`: 4 ranks on 2 hosts, each inside the image, and an
    allreduce across the containers gives the right sum. PMIx's shared-memory store and
    OpenMPI's cross-process memory copy do not cross user namespaces, so the job turns them
    off (PMIX_MCA_gds=hash, btl_vader_single_copy_mechanism=none), as Charliecloud advises;
    the job's scratch is bound because OpenMPI keeps its session folder in TMPDIR."""
    login = testbed.host(testbed.group("slurm_login")[0])
    image = (
        f"{testbed.value('charliecloud_image_dir')}/{testbed.value('charliecloud_mpi_image_name')}"
    )
    secrets = login.run(
        f"find {image}/etc \\( -name 'ssh_host_*' -o -name '*.key' -o -name shadow "
        f"-o -name munge \\) -print; grep -rlI 'PRIVATE KEY' {image}/etc"
    )
    assert secrets.stdout.strip() == "", f"the shared image holds secrets: {secrets.stdout}"
    build_hello(user_shell, login, "~/ch_mpi_hello")
    ran = user_shell(
        login,
        "export PMIX_MCA_gds=hash OMPI_MCA_btl_vader_single_copy_mechanism=none && "
        "srun -p cpu -N2 -n4 --mpi=pmix ch-run -b /home:/home -b /scratch:/scratch "
        f"{image} -- sh -c 'echo \"image $(head -n 1 /etc/wp5-image)\"; ~/ch_mpi_hello'",
    )
    user_shell(login, "rm -f ~/ch_mpi_hello ~/ch_mpi_hello.c")
    assert ran.rc == 0, ran.stdout + ran.stderr
    ranks = sorted(line for line in ran.stdout.splitlines() if line.startswith("rank "))
    assert len(ranks) == 4, ran.stdout
    assert len({line.split()[5] for line in ranks}) == 2, ranks
    assert {line.split()[7] for line in ranks} == {"6"}  # 0+1+2+3
    inside = [line for line in ran.stdout.splitlines() if line.startswith("image ")]
    assert len(inside) == 4 and all("OpenMPI from the node" in line for line in inside), inside
