"""Faults on the local target, each with the smallest testbed (two nodes, common role):
a node killed in the middle of `up`, Ctrl-C in the middle of `up`, and two instances up at
once; stale network state stops `up` before it starts. After each, the next `up` converges
and `down` leaves nothing with the label."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from testbeds.targets.local import podman
from tests.conftest import REPO
from tests.e2e.live import require_podman, run_cli

pytestmark = pytest.mark.e2e
SMOKE = str(REPO / "tests" / "fixtures" / "smoke.yaml")


@pytest.fixture(autouse=True)
def _needs_podman() -> None:
    require_podman()


@pytest.fixture
def instances() -> Iterator[list[str]]:
    """Instances a test brings up; all taken down afterwards, and checked to leave nothing."""
    made: list[str] = []
    yield made
    for instance in made:
        run_cli("down", instance, check=False)
    for instance in made:
        label = f"{podman.INSTANCE_LABEL}={instance}"
        left = podman.containers(label) + podman.networks(label) + podman.volumes(label)
        assert left == [], f"{instance} left {left}"


def start_up(instance: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["testbed", "up", SMOKE, "--instance", instance, "--no-verify"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 600) -> list[str]:
    """Read the command's progress until a line contains needle; returns the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        lines.append(line)
        if needle in line:
            return lines
        assert time.monotonic() < deadline, "".join(lines[-20:])
    raise AssertionError(f"{needle!r} never appeared:\n{''.join(lines[-30:])}")


def ansible_processes(instance: str) -> list[str]:
    """Processes whose full command line names Ansible and the instance's state."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if "ansible" in line and f"/{instance}/" in line:
            found.append(f"{proc.info['pid']} {line}")
    return found


def converged(instance: str) -> dict[str, object]:
    proc = run_cli("up", SMOKE, "--instance", instance, "--json")
    result: dict[str, object] = json.loads(proc.stdout)
    assert result["verify"]["ok"], result["verify"]  # type: ignore[index]
    return result


def test_node_killed_during_up_is_named_and_next_up_converges(instances: list[str]) -> None:
    """Killing a node's container while Ansible configures it fails `up` with a message
    naming that node and the step; the next `up` starts the node again and converges."""
    instance = "e2e-kill"
    instances.append(instance)
    proc = start_up(instance)
    wait_for_line(proc, "] changed: common")
    podman.run("kill", f"{instance}-node2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err
    assert "node node2, step '" in err, err[-2000:]
    converged(instance)


def test_ctrl_c_during_up_stops_ansible_and_next_up_converges(instances: list[str]) -> None:
    """Ctrl-C (SIGINT) in the middle of configuring stops ansible-playbook too (no process
    of the instance is left), exits 130 saying how to go on; the next `up` converges."""
    instance = "e2e-sigint"
    instances.append(instance)
    proc = start_up(instance)
    wait_for_line(proc, "PLAY Base system")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again to converge" in err
    assert ansible_processes(instance) == []
    converged(instance)


def test_two_instances_at_once_do_not_interfere(instances: list[str]) -> None:
    """Two instances brought up together get their own networks and nodes; taking one down
    leaves the other running."""
    pair = ["e2e-twin-a", "e2e-twin-b"]
    instances.extend(pair)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(converged, pair))
    assert results[0]["nodes"] != results[1]["nodes"]
    networks = [podman.networks(f"{podman.INSTANCE_LABEL}={i}") for i in pair]
    assert networks == [["wp5-e2e-twin-a"], ["wp5-e2e-twin-b"]]
    run_cli("down", pair[0])
    still = podman.containers(f"{podman.INSTANCE_LABEL}={pair[1]}")
    assert sorted(c["State"] for c in still) == ["running", "running"]


def test_stale_network_state_stops_up_before_anything_is_created(instances: list[str]) -> None:
    """A bridge left by a network podman no longer has (what a killed podman leaves) stops
    `up` in its preflight, naming the bridge and the command that removes it."""
    if os.geteuid() != 0:
        pytest.skip("creating a bridge needs root")
    instance = "e2e-stale-net"
    instances.append(instance)
    subprocess.run(["ip", "link", "add", "podman97", "type", "bridge"], check=True)
    try:
        proc = run_cli("up", SMOKE, "--instance", instance, check=False)
    finally:
        subprocess.run(["ip", "link", "delete", "podman97"], check=True)
    assert proc.returncode != 0
    assert "bridge podman97 (no podman network uses it)" in proc.stderr
    assert "ip link delete podman97" in proc.stderr
    assert podman.containers(f"{podman.INSTANCE_LABEL}={instance}") == []
