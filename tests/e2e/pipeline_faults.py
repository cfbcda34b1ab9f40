"""pipelines' faults, run on any live instance that holds its groups (service, worker,
gpuworker): a GPU job waits for the GPU worker rather than run elsewhere. The class that
brings the instance up mixes them in (tests/e2e/test_local_research_infrastructure.py)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, ClassVar

from testbeds.checks.helpers import wait_for
from testbeds.targets.local import podman
from tests.e2e.live import LiveTestbed

REPO_URL = "https://service/git/research-pipeline.git"


class PipelineFaults:
    instance: ClassVar[str]

    def as_developer(self, command: str) -> str:
        proc = podman.exec_(
            f"{self.instance}-service", "su", "-", "developer", "-c", command, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def pipelines(self, revision: str) -> list[dict[str, Any]]:
        proc = podman.exec_(f"{self.instance}-service", "wp5-pipeline-status", revision)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout))

    def test_gpu_job_waits_for_the_gpu_worker(self, live: LiveTestbed) -> None:
        """With the GPU worker stopped, a push runs its CPU job, then its GPU job waits instead
        of running on the CPU worker (or the HPC gateway); once the GPU worker is back the
        pipeline ends green."""
        gpu_worker = f"{self.instance}-gpuworker"
        branch = f"e2e/gpu-wait-{uuid.uuid4().hex[:8]}"
        podman.run("exec", gpu_worker, "systemctl", "stop", "buildbot-worker@gpuworker")
        try:
            work = f"/tmp/{branch.replace('/', '-')}"
            started = time.monotonic()
            self.as_developer(
                f"git clone -q {REPO_URL} {work} && cd {work} && git checkout -q -b {branch} && "
                "echo gpu-wait >> README.md && git commit -q -am 'GPU worker down' && "
                f"git push -q origin {branch}"
            )
            revision = self.as_developer(f"git -C {work} rev-parse HEAD && rm -rf {work}")
            revision = revision.splitlines()[0]

            def waiting_for_gpu() -> bool:
                runs = self.pipelines(revision)
                jobs = runs[0]["jobs"] if runs else []
                return [j["name"] for j in jobs] == ["test"] and jobs[0]["result"] == "success"

            assert wait_for(waiting_for_gpu, timeout=120, interval=2), self.pipelines(revision)
            time.sleep(10)  # the GPU job stays queued: it is not given to another worker
            assert waiting_for_gpu(), self.pipelines(revision)
            assert not self.pipelines(revision)[0]["finished"]
        finally:
            podman.run("exec", gpu_worker, "systemctl", "start", "buildbot-worker@gpuworker")

        assert wait_for(lambda: self.pipelines(revision)[0]["finished"], timeout=300, interval=2)
        pipeline = self.pipelines(revision)[0]
        assert pipeline["result"] == "success", pipeline
        assert [(j["name"], j["worker"]) for j in pipeline["jobs"]] == [
            ("test", "worker"),
            ("train", "gpuworker"),
            ("image", "worker"),
        ]
        print(
            f"push to green with the GPU worker down then back: {time.monotonic() - started:.0f} s"
        )
