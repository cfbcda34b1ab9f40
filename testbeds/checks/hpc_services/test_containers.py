"""Containers in jobs: Charliecloud runs an image unprivileged on two nodes at once, with the
user's own identity and /home and /shared bound in."""

from __future__ import annotations

import pytest


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
