"""research-infrastructure on the local podman target, for real: hpc-access (every node
group, unchanged), data-movement's sites, Rucio and client, and pipelines composed, through
the lifecycle (tests/e2e/lifecycle.py) with every check of the three testbeds and the
composition's own, and these faults: timings, status, slurmd killed and healed by the second
up (which changes nothing else), a name clash, the interlink role's preflight, elastic nodes
(tests/e2e/elastic_faults.py: status, the broker's boundary, a failed start and a node that
disappears), the HPC
site's transfer node down while a rule waits for it, data-movement's own
(tests/e2e/data_faults.py: a grid endpoint down during replication, a corrupted replica) and
pipelines' own (tests/e2e/pipeline_faults.py: a GPU job waits for the GPU worker).

The three testbeds are checked here, on one shared instance, rather than each on its own:
the composition holds all of hpc-access and pipelines, and data-movement's sites, Rucio and
client, and one instance for all keeps the suite within its time. The instance comes up from
the testbed's baked images (`testbed bake` first: it builds only images whose key changed,
running every install step), and its `up --full` runs the install steps once more on them,
changing nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from testbeds.checks.helpers import wait_for
from testbeds.inventory import inventory_sources
from testbeds.runner import run_playbook
from testbeds.state import StateDir
from testbeds.targets.local import podman
from tests.e2e.data_faults import DataMovementFaults
from tests.e2e.elastic_faults import ElasticFaults
from tests.e2e.lifecycle import Lifecycle
from tests.e2e.live import LiveTestbed, run_cli
from tests.e2e.pipeline_faults import PipelineFaults
from tests.e2e.rucio_client import rucio_on_client

pytestmark = pytest.mark.e2e
INSTANCE = "e2e-ri"
TESTBED = "research-infrastructure"


@pytest.fixture(scope="class")
def rucio(live: LiveTestbed) -> Iterator[Callable[..., Any]]:
    """One Rucio operation on the client node; uploads with a storage token for the RSE."""
    with rucio_on_client(INSTANCE) as run:
        yield run


class TestResearchInfrastructure(DataMovementFaults, PipelineFaults, ElasticFaults, Lifecycle):
    testbed = TESTBED
    instance = INSTANCE
    baked = True
    cases = frozenset(
        {
            "test_rule_to_the_hpc_site_reaches_ok",
            "test_rucio_gives_each_hpc_replicas_path_on_the_shared_filesystem",
            "test_slurm_job_reads_every_replica_by_its_path",
            "test_job_registers_its_result_in_rucio_with_the_users_tokens",
            "test_users_rule_copies_the_result_to_a_grid_site_with_its_checksum",
            "test_rule_replicates_dataset_to_two_more_endpoints",
            "test_every_replica_has_the_source_checksum",
            "test_deleting_the_rule_lets_the_reaper_remove_replicas",
            "test_users_own_token_is_the_user_in_rucio_and_nothing_else_is",
            "test_requests_without_a_fitting_token_are_refused",
            "test_an_expired_token_is_refused",
            "test_third_party_copy_with_tokens_keeps_checksum",
            "test_directory_user_writes_with_its_own_token_until_removed",
            "test_user_added_after_up_logs_in_and_submits_then_loses_access",
            "test_batch_job_spans_two_nodes",
            "test_munge_credential_decodes_on_controller",
            "test_mpi_hello_four_ranks_two_hosts",
            "test_finished_job_in_sacct",
            "test_gpu_job_gets_cuda_visible_devices",
            "test_prometheus_has_every_node_up",
            "test_file_written_by_job_on_one_node_read_on_another",
            "test_fpga_job_sees_one_device_and_runs_a_kernel",
            "test_job_gets_its_own_scratch_directory_removed_afterwards",
            "test_job_array_of_short_tasks_completes_in_bound",
            "test_user_writes_and_a_job_reads_back",
            "test_user_runs_an_image_on_two_nodes",
            "test_two_waiting_jobs_start_two_elastic_nodes_and_run_there",
            "test_idle_elastic_nodes_are_removed",
            "test_push_runs_the_pipeline_green",
            "test_gpu_job_runs_only_on_the_gpu_worker",
            "test_tracking_server_has_the_run_of_the_commit",
            "test_registry_lists_the_image_tagged_with_the_commit",
            "test_same_commit_twice_gives_the_same_model",
            "test_failing_test_turns_the_pipeline_red_and_publishes_nothing",
            "test_anonymous_git_push_is_refused",
            "test_anonymous_image_push_is_refused",
            "test_analysis_pipeline_builds_the_image_then_runs_on_the_cluster",
            "test_hpc_job_is_the_ci_accounts_slurm_job_on_the_gpu_node",
            "test_hpc_job_ran_exactly_the_image_the_pipeline_pushed",
            "test_failing_hpc_job_turns_the_pipeline_red_with_its_output",
            "test_scenario_hpc_job_reads_every_replica_in_the_pushed_image_on_the_gpu_node",
            "test_scenario_run_is_in_mlflow_with_commit_image_job_and_dataset",
        }
    )

    def test_timings_written(self, live: LiveTestbed, isolated_state: Path) -> None:
        """Every phase of the last up is timed and written to the state directory (each
        role's time too where the roles ran: see test_second_up_changes_nothing)."""
        timings = json.loads((isolated_state / INSTANCE / "timings-up.json").read_text())
        assert set(timings["phases_s"]) >= {"preflight", "provision", "inventory", "configure"}

    def test_status_shows_every_node_running(self, live: LiveTestbed) -> None:
        proc = run_cli("status", INSTANCE, "--json")
        status = json.loads(proc.stdout)
        assert status["up"] is True
        assert sorted(n["name"] for n in status["nodes"] if not n["elastic"]) == [
            "client",
            "controller",
            "cpu1",
            "cpu2",
            "ddm",
            "gateway",
            "gpu",
            "gpuworker",
            "hpc",
            "login",
            "service",
            "site1",
            "site2",
            "worker",
        ]

    def break_before_second_up(self, live: LiveTestbed) -> dict[str, int]:
        """Killing slurmd on cpu2 makes verify fail on that node's check alone; the second
        up's one change is then starting it again (every other task on every node is
        unchanged)."""
        container = f"{INSTANCE}-cpu2"
        podman.run("exec", container, "systemctl", "kill", "--signal=KILL", "slurmd")
        failed = run_cli("verify", INSTANCE, "--", "-k", "slurmd_running", check=False)
        assert failed.returncode == 1
        assert "test_slurmd_running[cpu2]" in failed.stderr
        assert "test_slurmd_running[cpu1] PASSED" not in failed.stderr  # only cpu2 fails
        return {"cpu2": 1}

    def check_healed(self, live: LiveTestbed) -> None:
        healed = run_cli(
            "verify", INSTANCE, "--", "-k", "slurmd_running or schedulable", check=False
        )
        assert healed.returncode == 0, healed.stderr[-3000:]

    def test_name_clash_refused_before_anything_is_created(self, live: LiveTestbed) -> None:
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
        self, live: LiveTestbed, tmp_path: Path
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

    def test_hpc_transfer_node_down_holds_the_rule_and_it_converges(
        self, live: LiveTestbed, rucio: Callable[..., Any]
    ) -> None:
        """With the cluster's transfer node stopped, a rule to the HPC site fails clearly
        (its transfers fail; Rucio marks it STUCK once their retries are spent) and nothing
        of the file appears on the shared filesystem. Once the node is back, boosting the
        rule (`rucio update-rule --boost-rule`: Rucio would retry a STUCK lock itself only
        hours later) brings it to OK, the file then in place where jobs read it."""
        container = f"{INSTANCE}-hpc"
        podman.run("exec", container, "systemctl", "stop", "xrootd@testbed")
        try:
            dataset = rucio(
                "dataset", "testbed", f"down-{uuid.uuid4().hex[:8]}", "SITE1", 1, 65536,
                token_for="site1",
            )  # fmt: skip
            rule = rucio("rule-add", dataset["did"], 1, "HPC")["rule"]
            name = dataset["files"][0]["name"]
            assert wait_for(lambda: rucio("rule", rule)["state"] == "STUCK", timeout=120), rucio(
                "rule", rule
            )
            found = podman.exec_(f"{INSTANCE}-login", "find", "/shared", "-name", f"{name}*")
            assert found.stdout.strip() == "", found.stdout
        finally:
            podman.run("exec", container, "systemctl", "start", "xrootd@testbed")
        rucio("rule-boost", rule)
        assert wait_for(lambda: rucio("rule", rule)["state"] == "OK", timeout=180, interval=3), (
            rucio("rule", rule)
        )
        pfn = next(iter(rucio("paths", dataset["did"], "HPC").values()))["pfn"]
        size = podman.exec_(f"{INSTANCE}-login", "stat", "-c", "%s", urlparse(pfn).path)
        assert size.stdout.strip() == "65536", (pfn, size.stderr)
