"""The static target for real: a partner site's existing hosts reached over SSH through a
bastion, host keys checked. The "site" is made of containers this test creates: a bastion
on a public and a private network, and three hosts on the private network only whose sshd
accepts logins only when they come through the bastion. A Slurm cluster is configured on
them with the same roles and checked with the same checks as on every other target; `down`
leaves the hosts as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from testbeds.model.loader import load_site
from testbeds.targets.local import podman
from testbeds.targets.local.image import ensure_base_image
from tests.conftest import REPO
from tests.e2e.live import require_podman

pytestmark = pytest.mark.e2e
LABEL = f"{podman.INSTANCE_LABEL}=e2e-static-site"
SITE = "partner-ssh"
INSTANCE = "e2e-static"
NODES = {"controller": "controller", "cpu1": "cpu", "cpu2": "cpu"}

DEFINITION = {
    "name": "static-slurm",
    "description": "Slurm core on a partner site's existing hosts",
    "checks": ["slurm_core"],
    "entry": "controller",
    "node_groups": [
        {
            "name": "controller",
            "roles": ["common", "munge", "slurm_controller", "slurm_login"],
            "expose": [{"port": 6817, "description": "slurmctld"}],
        },
        {
            "name": "cpu",
            "count": 2,
            "roles": ["common", "munge", "slurm_compute"],
            "traits": {"cpus": 1, "memory_mb": 500},
        },
    ],
}


@dataclass
class Site:
    home: Path
    definition: Path
    bastion_public: str
    addresses: dict[str, str]
    key: Path
    known_hosts: Path


def _run(*args: str) -> str:
    return podman.run(*args, timeout=300).stdout.strip()


def _address(container: str, network: str) -> str:
    return str(podman.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"])


def _boot(name: str, image: str, network: str, public_key: Path) -> None:
    options = podman.detect_runtime_options()
    _run(
        "run", "--detach", "--name", name, "--hostname", name.removeprefix("e2e-site-"),
        "--network", network, "--systemd=always", *options.args(), "--label", LABEL,
        "--volume", f"{public_key}:/root/.ssh/authorized_keys:ro", image, "/sbin/init",
    )  # fmt: skip
    for _ in range(120):
        state = podman.exec_(name, "systemctl", "is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            return
        subprocess.run(["sleep", "0.5"], check=True)
    raise AssertionError(f"{name} did not boot")


def _host_key(name: str) -> str:
    return podman.exec_(name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.strip()


def _cleanup() -> None:
    names = [c["Names"][0] for c in podman.containers(LABEL)]
    if names:
        podman.run("rm", "--force", *names, check=False, timeout=120)
    for net in podman.networks(LABEL):
        podman.run("network", "rm", "--force", net, check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_podman()
    _cleanup()
    home = tmp_path_factory.mktemp("static-home")
    shutil.copytree(REPO / "roles", home / "roles")
    shutil.copytree(REPO / "inventories", home / "inventories")
    key = home / "site_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    local = load_site("local").local
    assert local is not None
    image = ensure_base_image(local.debian_mirror, local.debian_suite, lambda _: None)
    try:
        _run("network", "create", "--label", LABEL, "e2e-site-public")
        _run("network", "create", "--label", LABEL, "e2e-site-private")
        _boot("e2e-site-bastion", image, "e2e-site-public", key.with_suffix(".pub"))
        _run("network", "connect", "e2e-site-private", "e2e-site-bastion")
        bastion_private = _address("e2e-site-bastion", "e2e-site-private")
        addresses = {}
        for node in NODES:
            container = f"e2e-site-{node}"
            _boot(container, image, "e2e-site-private", key.with_suffix(".pub"))
            # Logins are accepted only when they come from the bastion.
            only_bastion = (
                f"echo 'AllowUsers root@{bastion_private}' > /etc/ssh/sshd_config.d/site.conf"
            )
            podman.run("exec", container, "sh", "-c", f"{only_bastion} && systemctl restart ssh")
            addresses[node] = _address(container, "e2e-site-private")
        bastion_public = _address("e2e-site-bastion", "e2e-site-public")
        known_hosts = home / "known_hosts"
        known_hosts.write_text(
            f"{bastion_public} {_host_key('e2e-site-bastion')}\n"
            + "".join(f"{addresses[n]} {_host_key(f'e2e-site-{n}')}\n" for n in NODES)
        )
        site_dir = home / "inventories" / SITE
        site_dir.mkdir()
        # The hosts are containers, with the same limits as the local target's nodes.
        shutil.copytree(REPO / "inventories" / "local" / "group_vars", site_dir / "group_vars")
        (site_dir / "site.yml").write_text(
            yaml.safe_dump(
                {
                    "name": SITE,
                    "default_target": "static",
                    "static": {
                        "user": "root",
                        "private_key": str(key),
                        "known_hosts": "../../known_hosts",
                        "bastion": {"host": bastion_public, "user": "root"},
                    },
                }
            )
        )
        children: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
        for node, group in NODES.items():
            children.setdefault(group, {"hosts": {}})["hosts"][node] = {
                "ansible_host": addresses[node]
            }
        (site_dir / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": children}}))
        definition = home / "static-slurm.yaml"
        definition.write_text(yaml.safe_dump(DEFINITION, sort_keys=False))
        yield Site(home, definition, bastion_public, addresses, key, known_hosts)
    finally:
        _cleanup()


def run_testbed(site: Site, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["testbed", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, "TESTBED_HOME": str(site.home)},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"testbed {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-5000:]}"
        )
    return proc


def test_hosts_refuse_logins_that_skip_the_bastion(site: Site) -> None:
    """A direct SSH to a site host is refused: the bastion is the only way in."""
    direct = subprocess.run(
        [
            "ssh", "-i", str(site.key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", f"UserKnownHostsFile={site.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            f"root@{site.addresses['cpu1']}", "true",
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert direct.returncode != 0
    assert "Permission denied" in direct.stderr


def test_port_in_use_on_a_host_stops_the_first_up(site: Site) -> None:
    """Something already listening on a port the definition exposes stops `up` with an
    error naming the definition's field and the host, before anything is configured."""
    listener = "e2e-site-controller"
    podman.run("exec", "-d", listener, "python3", "-m", "http.server", "6817")
    try:
        time.sleep(1)
        proc = run_testbed(site, "up", str(site.definition), "--site", SITE, "--target", "static",
                       "--instance", "e2e-static-clash", check=False)  # fmt: skip
    finally:
        podman.run("exec", listener, "pkill", "-f", "http.server 6817", check=False)
        run_testbed(site, "down", "e2e-static-clash", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "node_groups[0].expose[0].port: 6817/tcp is already in use on host controller" in (
        proc.stderr
    )
    assert podman.exec_(listener, "test", "-e", "/etc/munge/munge.key").returncode != 0


def test_up_configures_and_checks_the_site_through_the_bastion(site: Site) -> None:
    """`up --target static` configures Slurm on the site's hosts over SSH via ProxyJump and
    the slurm_core checks pass against them, over the same path."""
    proc = run_testbed(site, "up", str(site.definition), "--site", SITE, "--target", "static",
                   "--instance", INSTANCE, "--json")  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["ansible"]["changed"] > 0
    assert result["verify"]["ok"], result["verify"]
    assert result["verify"]["tests"] >= 8
    assert (
        "ProxyJump wp5-bastion"
        in (Path(result["verify"]["report"]).parent / "ssh_config").read_text()
    )


def test_second_up_changes_nothing(site: Site) -> None:
    """Every role run again (`--full`) changes nothing; without it nothing runs at all."""
    proc = run_testbed(site, "up", str(site.definition), "--site", SITE, "--target", "static",
                   "--instance", INSTANCE, "--json", "--no-verify", "--full")  # fmt: skip
    assert json.loads(proc.stdout)["ansible"]["changed"] == 0
    proc = run_testbed(site, "up", str(site.definition), "--site", SITE, "--target", "static",
                   "--instance", INSTANCE, "--json", "--no-verify")  # fmt: skip
    assert json.loads(proc.stdout)["ansible"]["status"] == "unchanged", proc.stderr[-2000:]


def test_unknown_host_key_is_refused(site: Site) -> None:
    """With a known_hosts that does not list the hosts, nothing is configured."""
    saved = site.known_hosts.read_text()
    site.known_hosts.write_text(saved.splitlines()[0] + "\n")  # the bastion only
    try:
        proc = run_testbed(site, "up", str(site.definition), "--site", SITE, "--target", "static",
                       "--instance", "e2e-static-unknown", check=False)  # fmt: skip
    finally:
        site.known_hosts.write_text(saved)
    assert proc.returncode == 2
    assert "do not answer over SSH" in proc.stderr
    assert "Host key verification failed" in proc.stderr


def test_down_leaves_the_hosts_alone(site: Site) -> None:
    """down forgets the instance but removes nothing of the site's: every host still runs."""
    run_testbed(site, "down", INSTANCE)
    running = {c["Names"][0] for c in podman.containers(LABEL) if c["State"] == "running"}
    assert {f"e2e-site-{n}" for n in NODES} | {"e2e-site-bastion"} <= running
