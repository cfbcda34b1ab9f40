"""Fixtures of the pipeline checks: the service node, a developer who pushes commits, and
the pipelines Buildbot ran for them. Pushes go to branches named check/..., so the
repository's main branch stays as seeded and checks can run again on the same testbed."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testbeds.checks.helpers import wait_for, write_private_file
from testbeds.checks.pipelines.support import (
    DEVELOPER,
    PIPELINE_TIMEOUT_S,
    REPOSITORY,
    master_secrets,
)


@dataclass
class Push:
    """A commit pushed to a branch, and the pipeline Buildbot ran for it."""

    branch: str
    revision: str
    pipeline: dict[str, Any]
    seconds: float  # from the push until the pipeline finished

    def job(self, name: str) -> dict[str, Any] | None:
        return next((j for j in self.pipeline["jobs"] if j["name"] == name), None)


@pytest.fixture(scope="session")
def service(testbed: Any) -> Any:
    return testbed.host(testbed.group("git_server")[0])


@pytest.fixture(scope="session")
def git_base(testbed: Any) -> str:
    return f"https://{testbed.group('git_server')[0]}/git"


@pytest.fixture(scope="session")
def repo_url(git_base: str) -> str:
    return f"{git_base}/{REPOSITORY}.git"


@pytest.fixture(scope="session")
def developer(service: Any) -> Callable[[str], Any]:
    """Run a shell command as the developer account (which holds push credentials)."""

    def run(command: str) -> Any:
        return service.run(f"su - {DEVELOPER} -c {shlex.quote(command)}")

    return run


@pytest.fixture(scope="session")
def pipelines_of(testbed: Any) -> Callable[[str], list[dict[str, Any]]]:
    """The pipelines Buildbot ran (or is running) for a commit, from its master."""
    master = testbed.host(testbed.group("buildbot_master")[0])

    def status(revision: str) -> list[dict[str, Any]]:
        out = master.run(f"wp5-pipeline-status {shlex.quote(revision)}")
        assert out.rc == 0, out.stderr
        return list(json.loads(out.stdout))

    return status


@pytest.fixture(scope="session")
def buildbot_logs(testbed: Any) -> Callable[[], str]:
    """The last lines of the master's and each worker's log, for a pipeline that did not
    finish (a job can wait on a worker whose connection the master still trusts)."""
    master = testbed.group("buildbot_master")[0]
    logs = [(master, f"{master_secrets(testbed).rsplit('/', 1)[0]}/twistd.log")] + [
        (node, f"/var/lib/buildbot/workers/{node}/twistd.log")
        for node in testbed.group("buildbot_worker")
    ]

    def tails() -> str:
        return "\n".join(
            f"--- {node}:{path}\n" + testbed.host(node).run(f"tail -n 25 {path} 2>&1").stdout
            for node, path in logs
        )

    return tails


@pytest.fixture(scope="session")
def push(
    developer: Callable[[str], Any],
    git_base: str,
    pipelines_of: Callable[[str], list[dict[str, Any]]],
    buildbot_logs: Callable[[], str],
) -> Callable[..., Push]:
    """Commit a change on top of main as the developer, push it to a new branch and wait
    for its pipeline to finish. `change` is a shell command run in the working copy;
    `revision` pushes an existing commit instead; `repository` is the sample one unless
    named; `during`, if given, is called with the commit once it is pushed, while its
    pipeline runs."""

    def run(
        label: str,
        change: str = "",
        revision: str = "",
        repository: str = REPOSITORY,
        during: Callable[[str], None] | None = None,
    ) -> Push:
        repo_url = f"{git_base}/{repository}.git"
        branch = f"check/{label}-{uuid.uuid4().hex[:8]}"
        work = f"/tmp/{branch.replace('/', '-')}"
        if revision:
            script = f"cd {work} && git push -q origin {revision}:refs/heads/{branch}"
        else:
            script = (
                f"cd {work} && git checkout -q -b {branch} && {change} && "
                f"git commit -q -am {shlex.quote(f'{label} (testbed check)')} && "
                f"git push -q origin {branch}"
            )
        started = time.monotonic()
        out = developer(f"rm -rf {work} && git clone -q {repo_url} {work} && {script}")
        assert out.rc == 0, f"push to {branch} failed:\n{out.stdout}\n{out.stderr}"
        head = developer(f"git -C {work} rev-parse {revision or 'HEAD'}").stdout.strip()
        developer(f"rm -rf {work}")
        if during is not None:
            during(head)

        def finished() -> bool:
            runs = [p for p in pipelines_of(head) if p["branch"] == branch]
            return bool(runs) and runs[-1]["finished"]

        assert wait_for(finished, timeout=PIPELINE_TIMEOUT_S, interval=1), (
            f"no finished pipeline for {head} on {branch} after {PIPELINE_TIMEOUT_S} s: "
            f"{pipelines_of(head)}\n{buildbot_logs()}"
        )
        pipeline = [p for p in pipelines_of(head) if p["branch"] == branch][-1]
        return Push(branch, head, pipeline, round(time.monotonic() - started, 1))

    return run


@pytest.fixture(scope="session")
def green(push: Callable[..., Push]) -> Push:
    """A commit that changes nothing the tests or the model depend on."""
    return push("green", change="echo 'checked by testbed verify' >> README.md")


@pytest.fixture(scope="session")
def green_again(push: Callable[..., Push], green: Push) -> Push:
    """The same commit pushed a second time, to another branch."""
    return push("repeat", revision=green.revision)


@pytest.fixture(scope="session")
def red(push: Callable[..., Push]) -> Push:
    """A commit whose unit tests fail."""
    return push(
        "red",
        change="sed -i 's/assert np.array_equal/assert not np.array_equal/' tests/test_model.py",
    )


@pytest.fixture(scope="session")
def mlflow_base(testbed: Any) -> str:
    return f"https://{testbed.group('mlflow')[0]}:{testbed.value('mlflow_port')}"


@pytest.fixture(scope="session")
def ci_curl_config(testbed: Any, service: Any) -> str:
    """A root-only curl config on the service node with the CI account's user and password
    (the definition's account, its generated secret read on the control node): the checks
    read the registry and MLflow as that account, which no job holds any more."""
    password = (testbed.secrets_dir / "user-ci-password").read_text().strip()
    path = "/root/.wp5-check-ci.curl"
    write_private_file(service, path, f'user = "ci:{password}"\n')
    return path


@pytest.fixture(scope="session")
def mlflow(
    testbed: Any, mlflow_base: str, service: Any, ci_curl_config: str
) -> Iterator[Callable[..., Any]]:
    """Call the tracking server's REST API from the service node, over HTTPS verified
    against the testbed CA, as the CI account (its password in a root-only curl config
    there, never on a command line). The experiments the checks make (through this, and
    the probing jobs' `<repository>/job-*`) are deleted at the end of the session, so
    repeated `verify` runs do not pile them up."""
    started_ms = int(time.time() * 1000)
    made: list[str] = []

    def call(path: str, payload: dict[str, Any] | None = None, raw: bool = False) -> Any:
        data = f"-X POST -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(payload))}"
        out = service.run(
            f"curl -sS --fail -K {ci_curl_config} --cacert {testbed.value('testbed_ca_file')} "
            f"{data if payload else ''} {shlex.quote(mlflow_base + path)}"
        )
        assert out.rc == 0, f"MLflow {path}: {out.stderr}"
        answer = out.stdout if raw else json.loads(out.stdout)
        if path.endswith("/experiments/create"):
            made.append(str(answer["experiment_id"]))
        return answer

    yield call
    jobs = call(
        "/api/2.0/mlflow/experiments/search",
        {
            "max_results": 1000,
            "filter": f"name LIKE '{REPOSITORY}/job-%' AND creation_time >= {started_ms}",
        },
    ).get("experiments", [])
    for experiment_id in made + [str(e["experiment_id"]) for e in jobs]:
        call("/api/2.0/mlflow/experiments/delete", {"experiment_id": experiment_id})


@pytest.fixture(scope="session")
def runs_of(mlflow: Callable[..., Any]) -> Callable[[str], list[dict[str, Any]]]:
    """The tracking server's runs tagged with a commit hash."""

    def search(revision: str) -> list[dict[str, Any]]:
        experiment = mlflow(f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={REPOSITORY}")
        found = mlflow(
            "/api/2.0/mlflow/runs/search",
            {
                "experiment_ids": [experiment["experiment"]["experiment_id"]],
                "filter": f"tags.git_commit = '{revision}'",
            },
        )
        return list(found.get("runs", []))

    return search


@pytest.fixture(scope="session")
def registry(testbed: Any, service: Any, ci_curl_config: str) -> Callable[..., Any]:
    """GET from the registry's API from the service node, as the CI account (or anonymously),
    the password in a root-only curl config there, never on a command line."""
    host = testbed.group("container_registry")[0]
    base = f"https://{host}:{testbed.value('container_registry_port')}"

    def get(path: str, accept: str = "", anonymous: bool = False) -> Any:
        credentials = "" if anonymous else f"-K {ci_curl_config}"
        header = f"-H {shlex.quote('Accept: ' + accept)}" if accept else ""
        url = shlex.quote(base + path)
        return service.run(f"curl -sS {credentials} -w '\\n%{{http_code}}' {header} {url}")

    return get
