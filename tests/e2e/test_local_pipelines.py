"""pipelines on the local podman target, for real: up -> checks (pushes run the sample
pipeline green, a failing commit red) -> idempotent up -> a GPU job waits for the GPU worker
rather than run elsewhere -> down -> nothing left. Brought up once (tests/e2e/lifecycle.py)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from testbeds.checks.helpers import wait_for
from testbeds.targets import podman
from tests.e2e.lifecycle import Lifecycle
from tests.e2e.live import LiveTestbed

pytestmark = pytest.mark.e2e
INSTANCE = "e2e-pl"
SERVICE = f"{INSTANCE}-service"
GPU_WORKER = f"{INSTANCE}-gpu"
REPO_URL = "https://service/git/research-pipeline.git"


def as_developer(command: str) -> str:
    proc = podman.exec_(SERVICE, "su", "-", "developer", "-c", command, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def pipelines(revision: str) -> list[dict[str, Any]]:
    proc = podman.exec_(SERVICE, "wp5-pipeline-status", revision)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


class TestPipelines(Lifecycle):
    testbed = "pipelines"
    instance = INSTANCE
    cases = frozenset(
        {
            "test_push_runs_the_pipeline_green",
            "test_gpu_job_runs_only_on_the_gpu_worker",
            "test_tracking_server_has_the_run_of_the_commit",
            "test_registry_lists_the_image_tagged_with_the_commit",
            "test_same_commit_twice_gives_the_same_model",
            "test_failing_test_turns_the_pipeline_red_and_publishes_nothing",
            "test_anonymous_git_push_is_refused",
            "test_anonymous_image_push_is_refused",
        }
    )

    def test_gpu_job_waits_for_the_gpu_worker(self, live: LiveTestbed) -> None:
        """With the GPU worker stopped, a push runs its CPU job, then its GPU job waits instead
        of running on the CPU worker; once the GPU worker is back the pipeline ends green."""
        branch = f"e2e/gpu-wait-{uuid.uuid4().hex[:8]}"
        podman.run("exec", GPU_WORKER, "systemctl", "stop", "buildbot-worker@gpu")
        try:
            work = f"/tmp/{branch.replace('/', '-')}"
            started = time.monotonic()
            as_developer(
                f"git clone -q {REPO_URL} {work} && cd {work} && git checkout -q -b {branch} && "
                "echo gpu-wait >> README.md && git commit -q -am 'GPU worker down' && "
                f"git push -q origin {branch}"
            )
            revision = as_developer(f"git -C {work} rev-parse HEAD && rm -rf {work}").splitlines()[
                0
            ]

            def waiting_for_gpu() -> bool:
                runs = pipelines(revision)
                jobs = runs[0]["jobs"] if runs else []
                return [j["name"] for j in jobs] == ["test"] and jobs[0]["result"] == "success"

            assert wait_for(waiting_for_gpu, timeout=120, interval=2), pipelines(revision)
            time.sleep(10)  # the GPU job stays queued: it is not given to the CPU worker
            assert waiting_for_gpu(), pipelines(revision)
            assert not pipelines(revision)[0]["finished"]
        finally:
            podman.run("exec", GPU_WORKER, "systemctl", "start", "buildbot-worker@gpu")

        assert wait_for(lambda: pipelines(revision)[0]["finished"], timeout=300, interval=2)
        pipeline = pipelines(revision)[0]
        assert pipeline["result"] == "success", pipeline
        assert [(j["name"], j["worker"]) for j in pipeline["jobs"]] == [
            ("test", "worker"),
            ("train", "gpu"),
            ("image", "worker"),
        ]
        print(
            f"push to green with the GPU worker down then back: {time.monotonic() - started:.0f} s"
        )
