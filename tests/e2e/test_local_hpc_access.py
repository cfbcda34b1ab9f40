"""hpc-access on the local podman target, for real: up -> verify -> idempotent up -> faults
-> down -> nothing left. The testbed is brought up once for the whole module."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbeds.inventory import inventory_sources
from testbeds.runner import run_playbook
from testbeds.state import StateDir
from testbeds.targets import podman
from tests.e2e.live import LiveTestbed, bring_up, run_cli

pytestmark = pytest.mark.e2e
INSTANCE = "e2e-hpc"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveTestbed]:
    yield from bring_up("hpc-access", INSTANCE)


def test_up_configures_and_passes_its_checks(live: LiveTestbed) -> None:
    """The first up changes the nodes, and its verify phase runs the checks, all passing."""
    assert live.first_up["ansible"]["changed"] > 0
    verify = live.first_up["verify"]
    assert verify["ok"], verify
    assert verify["tests"] == 89 and verify["failures"] == 0 and verify["errors"] == 0
    cases = {c.get("name") for c in ET.parse(verify["report"]).getroot().iter("testcase")}
    assert "test_batch_job_spans_two_nodes" in cases
    assert any(name.startswith("test_munge_credential_decodes_on_controller") for name in cases)
    assert {
        "test_mpi_hello_four_ranks_two_hosts",
        "test_finished_job_in_sacct",
        "test_gpu_job_gets_cuda_visible_devices",
        "test_prometheus_has_every_node_up",
        "test_file_written_by_job_on_one_node_read_on_another",
    } <= cases


def test_timings_written(live: LiveTestbed, isolated_state: Path) -> None:
    """Every phase is timed and written to the state directory."""
    timings = json.loads((isolated_state / INSTANCE / "timings-up.json").read_text())
    assert set(timings["phases_s"]) >= {"preflight", "provision", "inventory", "configure"}
    assert timings["roles_s"]["slurm"] > 0


def test_state_is_private_and_holds_no_caller_environment(live: LiveTestbed) -> None:
    """State folders 0700, secrets 0600, and no file (Ansible's artifacts included) holds
    the cloud password, Pulumi passphrase or CI token the first up ran with."""
    assert live.state_problems() == []


def test_second_up_changes_nothing(live: LiveTestbed) -> None:
    """Re-running up converges with changed=0 in the Ansible recap."""
    proc = run_cli("up", "hpc-access", "--instance", INSTANCE, "--json", "--no-verify")
    result = json.loads(proc.stdout)
    assert result["ansible"]["changed"] == 0, result["ansible"]["changed_per_node"]


def test_status_shows_every_node_running(live: LiveTestbed) -> None:
    proc = run_cli("status", INSTANCE, "--json")
    status = json.loads(proc.stdout)
    assert status["up"] is True
    assert sorted(n["name"] for n in status["nodes"]) == [
        "controller",
        "cpu1",
        "cpu2",
        "gpu",
        "login",
    ]


def test_verify_fails_naming_node_when_slurmd_dies_and_up_heals(live: LiveTestbed) -> None:
    """Killing slurmd on cpu2 makes verify fail on that node's check; the next up restarts it."""
    container = f"{INSTANCE}-cpu2"
    podman.run("exec", container, "systemctl", "kill", "--signal=KILL", "slurmd")
    failed = run_cli("verify", INSTANCE, "--", "-k", "slurmd_running", check=False)
    assert failed.returncode == 1
    assert "test_slurmd_running[cpu2]" in failed.stderr
    assert "test_slurmd_running[cpu1] PASSED" not in failed.stderr  # only cpu2 fails
    run_cli("up", "hpc-access", "--instance", INSTANCE, "--no-verify")
    healed = run_cli("verify", INSTANCE, "--", "-k", "slurmd_running or idle", check=False)
    assert healed.returncode == 0, healed.stderr[-3000:]


def test_name_clash_refused_before_anything_is_created(live: LiveTestbed) -> None:
    """A foreign container holding a node's name stops `up` before it creates anything."""
    image = podman.inspect(f"{INSTANCE}-login")["ImageName"]
    podman.run("create", "--name", "e2e-clash-login", image, "true")
    try:
        proc = run_cli("up", "hpc-access", "--instance", "e2e-clash", check=False)
        assert proc.returncode == 2
        assert "'e2e-clash-login' already exists and is not part of" in proc.stderr
        assert podman.containers(f"{podman.INSTANCE_LABEL}=e2e-clash") == []
        assert podman.container_by_name("e2e-clash-login") is not None  # untouched
    finally:
        podman.run("rm", "--force", "e2e-clash-login")


def test_interlink_role_checks_the_login_node_before_installing(
    live: LiveTestbed, tmp_path: Path
) -> None:
    """The interlink role's preflight, run for real on the login node: sbatch is found, and
    with no Apptainer or Singularity (none is installable here) it stops with a message
    saying what the Slurm plugin needs, before anything is installed."""
    playbook = tmp_path / "interlink.yml"
    playbook.write_text(
        "- hosts: slurm_login\n  roles:\n    - role: interlink\n"
        "      vars: {interlink_binaries_dir: /nonexistent}\n"
    )
    result = run_playbook(
        playbook,
        inventory_sources("local", StateDir(INSTANCE).inventory_file),
        tmp_path / "runner",
        forks=1,
        tags=["interlink_preflight"],
    )
    assert not result.ok
    assert any(
        "node login" in failure and "neither apptainer nor singularity is on login" in failure
        for failure in result.failures
    ), result.failures
    installed = podman.run(
        "exec", f"{INSTANCE}-login", "test", "-e", "/usr/local/bin/interlink", check=False
    )
    assert installed.returncode != 0


def test_down_leaves_nothing(live: LiveTestbed) -> None:
    """down removes every container, network and volume with the instance's label."""
    run_cli("down", INSTANCE)
    assert live.leftovers() == []
    assert run_cli("status", INSTANCE, check=False).returncode == 3
