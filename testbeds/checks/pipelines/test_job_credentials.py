"""Least privilege for pipeline jobs and projects: a job holds no password of any account,
only a credential minted for it, which writes only into its own project's registry
namespace and MLflow experiments and stops working when the job ends; a commit cannot make
the master read a file through a link; only a project's members push to its repository or
write to its registry namespace and experiments, while any account pulls and reads."""

from __future__ import annotations

import base64
import json
import re
import shlex
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from testbeds.checks.directory_accounts import NewUser
from testbeds.checks.helpers import write_private_file
from testbeds.checks.pipelines.conftest import Push
from testbeds.checks.pipelines.support import REPOSITORY, master_secrets

# The name a job's leftover process takes, to look for it once the job has ended.
OUTLIVER = "wp5-check-outliving-job"
# An experiment the leaking job tries to write to: someone else's (its id is filled in).
FOREIGN_EXPERIMENT = "{foreign_experiment}"
# A job that prints its whole environment and its parent's, reversed and base64-encoded
# (Buildbot hides secrets only verbatim), then tries its own credential on its own
# project's registry namespace and on another's, and on an MLflow experiment of its own
# project and one of another account, tries to read the worker's password and to leave a
# process behind, and fails so that its output is kept.
LEAKING_PIPELINE = {
    "jobs": [
        {
            "name": "leak",
            "script": [
                'echo "environment=$(env | rev | base64 -w0)"',
                "echo \"parent=$(tr '\\0' '\\n' < /proc/$PPID/environ | rev | base64 -w0)\"",
                'echo "job-user=$(id -un)"',
                'echo "worker-secrets-read=$(cat /var/lib/buildbot/workers/*/buildbot.tac'
                ' 2>/dev/null | wc -c)"',
                # A process that tries to outlive the job, in a session of its own.
                f"setsid bash -c 'exec -a {OUTLIVER} sleep 3600' </dev/null >/dev/null 2>&1 &",
                'creds=$(mktemp) && printf \'user = "%s:%s"\\n\' "$CI_REGISTRY_USER"'
                ' "$CI_REGISTRY_PASSWORD" > "$creds"',
                'for ns in "$CI_PROJECT" another-project; do echo "upload-$ns=$(curl -s '
                "-o /dev/null -w '%{http_code}' -K \"$creds\" --cacert "
                '"$MLFLOW_TRACKING_SERVER_CERT_PATH" -X POST '
                '"https://$CI_REGISTRY/v2/$ns/probe/blobs/uploads/")"; done',
                'mlflow() { curl -s -o /dev/null -w "%{http_code}" -K "$creds" --cacert '
                '"$MLFLOW_TRACKING_SERVER_CERT_PATH" -H "Content-Type: application/json" '
                '-X POST -d "$2" "$MLFLOW_TRACKING_URI/api/2.0/mlflow/$1"; }',
                'echo "mlflow-own=$(mlflow experiments/create'
                ' "{\\"name\\": \\"$CI_PROJECT/job-$(date +%s%N)\\"}")"',
                'echo "mlflow-foreign=$(mlflow runs/create'
                f' "{{\\"experiment_id\\": \\"{FOREIGN_EXPERIMENT}\\"}}")"',
                'rm -f "$creds"',
                "exit 1",
            ],
        }
    ]
}
# What a credential of this testbed can look like: the generated passwords are letters and
# digits, the job tokens URL-safe base64 (paths, URLs, ports and flags are not tried).
CREDENTIAL_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}")


def file_change(path: str, content: str) -> str:
    """A shell command writing `content` to `path` in the working copy, quoted once."""
    encoded = base64.b64encode(content.encode()).decode()
    return f"echo {encoded} | base64 -d > {shlex.quote(path)}"


def printed(push: Push, key: str) -> str:
    """The value the leaking job printed as key=value."""
    job = push.job("leak")
    assert job is not None, push.pipeline
    lines = job.get("output_tail") or []
    found = [line.split("=", 1)[1] for line in lines if line.startswith(f"{key}=")]
    assert found, f"the job printed no {key}=: {lines}"
    return found[-1]


def leaked_values(push: Push) -> set[str]:
    """Every value of the job's and its parent's environment, decoded as an attacker would."""
    values = set()
    for key in ("environment", "parent"):
        text = base64.b64decode(printed(push, key)).decode(errors="replace")
        for line in text.splitlines():
            _, _, value = line[::-1].partition("=")
            if CREDENTIAL_LIKE.fullmatch(value):
                values.add(value)
    return values


@pytest.fixture(scope="session")
def leaking_job(push: Callable[..., Push], mlflow: Callable[..., Any]) -> Push:
    """The leaking job's pipeline, with an experiment of the CI account (no project's) as
    the one it must not write to."""
    made = mlflow(
        "/api/2.0/mlflow/experiments/create", {"name": f"ci-notes-{uuid.uuid4().hex[:8]}"}
    )
    pipeline = yaml.safe_dump(LEAKING_PIPELINE).replace(
        FOREIGN_EXPERIMENT, str(made["experiment_id"])
    )
    return push("leak", change=file_change(".wp5-pipeline.yml", pipeline))


# Run on the service node: each user:password pair of a root-only JSON file against each
# URL, with HTTP Basic over TLS checked against the CA; prints the statuses as JSON.
PROBE = """
import base64, json, ssl, sys, urllib.error, urllib.request
pairs, urls, ca = json.load(open(sys.argv[1]))
context = ssl.create_default_context(cafile=ca)
found = []
for user, password in pairs:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    row = {}
    for name, url in urls.items():
        request = urllib.request.Request(url, headers={"Authorization": "Basic " + token})
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                row[name] = answer.status
        except urllib.error.HTTPError as error:
            row[name] = error.code
    found.append(row)
print(json.dumps(found))
"""


class LoginProbe:
    """Tries user:password pairs at the registry, MLflow and git's push endpoint from the
    service node, all pairs in one root-only file read there: never on a command line.
    Answers the HTTP status of each."""

    def __init__(self, testbed: Any, service: Any, repo_url: str) -> None:
        self.service = service
        registry = testbed.group("container_registry")[0]
        mlflow = testbed.group("mlflow")[0]
        self.ca = testbed.value("testbed_ca_file")
        self.urls = {
            "registry": f"https://{registry}:{testbed.value('container_registry_port')}/v2/",
            "mlflow": f"https://{mlflow}:{testbed.value('mlflow_port')}"
            "/api/2.0/mlflow/experiments/search?max_results=1",
            "git push": f"{repo_url}/info/refs?service=git-receive-pack",
        }
        self.folder = service.check_output("mktemp -d /root/login-probe.XXXXXX")
        write_private_file(service, f"{self.folder}/probe.py", PROBE)

    def statuses_of(self, pairs: list[tuple[str, str]]) -> list[dict[str, int]]:
        config = f"{self.folder}/pairs.json"
        write_private_file(self.service, config, json.dumps([pairs, self.urls, self.ca]))
        out = self.service.run(f"python3 {self.folder}/probe.py {config}; rm -f {config}")
        assert out.rc == 0, out.stderr
        return list(json.loads(out.stdout))

    def statuses(self, user: str, password: str) -> dict[str, int]:
        return self.statuses_of([(user, password)])[0]

    def close(self) -> None:
        self.service.run(f"rm -rf {self.folder}")


@pytest.fixture
def login_probe(testbed: Any, service: Any, repo_url: str) -> Iterator[LoginProbe]:
    probe = LoginProbe(testbed, service, repo_url)
    yield probe
    probe.close()


def test_a_job_holds_a_credential_of_its_own_not_an_accounts_password(leaking_job, testbed):
    """The job's registry and MLflow user is a per-job credential, and the CI account's
    password is nowhere in its environment or its parent's."""
    user = printed_user(leaking_job)
    assert re.fullmatch(r"ci-job-[0-9a-f]{12}", user), user
    ci_password = (testbed.secrets_dir / "user-ci-password").read_text().strip()
    assert ci_password not in leaked_values(leaking_job)


def printed_environment(push: Push) -> dict[str, str]:
    """The job's environment as it printed it, decoded as an attacker would."""
    text = base64.b64decode(printed(push, "environment")).decode(errors="replace")
    return dict(line[::-1].partition("=")[::2] for line in text.splitlines() if "=" in line)


def printed_user(push: Push) -> str:
    user = printed_environment(push).get("CI_REGISTRY_USER")
    assert user, "no CI_REGISTRY_USER in the job's environment"
    return user


def test_a_job_runs_as_its_own_account_and_cannot_read_the_workers_password(leaking_job):
    """On a CI worker the job's script runs as the jobs' account, not the worker's, and
    reads nothing of the worker's connection settings (its password)."""
    assert printed(leaking_job, "job-user") == "wp5-job"
    assert printed(leaking_job, "worker-secrets-read") == "0"


def test_nothing_a_job_started_outlives_it(leaking_job, testbed):
    """The process the job left behind in a session of its own is gone once the job has
    ended: its unit was stopped, every process in it killed."""
    left = {
        node: testbed.host(node).run(f"pgrep -f -x {OUTLIVER}.*").stdout.split()
        for node in testbed.group("buildbot_worker")
    }
    assert not any(left.values()), left


def test_no_worker_logs_a_jobs_environment(leaking_job, testbed):
    """The workers' own logs hold no job's environment (its credential would be there in
    clear, for the next job on that worker to read)."""
    user = printed_user(leaking_job)
    logged = {
        node: testbed.host(node).run(f"cat /var/lib/buildbot/workers/*/twistd.log | grep -c {user}")
        for node in testbed.group("buildbot_worker")
    }
    assert not [node for node, out in logged.items() if out.stdout.strip() not in ("", "0")], {
        node: out.stdout for node, out in logged.items()
    }


def test_a_jobs_credential_writes_only_into_its_own_projects_namespace(leaking_job):
    """During the job its credential may start an upload in its own project's registry
    namespace and is refused in another project's."""
    assert printed(leaking_job, f"upload-{REPOSITORY}") == "202"
    assert printed(leaking_job, "upload-another-project") == "401"


def test_a_jobs_credential_writes_only_its_own_projects_experiments(leaking_job):
    """During the job its credential creates an experiment under its repository's name in
    MLflow and is refused a run in an experiment of another account."""
    assert printed(leaking_job, "mlflow-own") == "200"
    assert printed(leaking_job, "mlflow-foreign") == "403"


def test_nothing_a_job_printed_logs_in_anywhere_after_it_ended(leaking_job, login_probe):
    """Every credential-like value of the job's environment and its parent's (its own token
    among them), tried as the password of the CI account and of the job's own user, is
    refused by the registry, MLflow and git once the job has ended."""
    user = printed_user(leaking_job)
    values = leaked_values(leaking_job)
    token = printed_environment(leaking_job)["CI_REGISTRY_PASSWORD"]
    assert token in values, "the job's own token was not among the values tried"
    pairs = [(account, value) for value in sorted(values) for account in ("ci", user)]
    accepted = [
        (account, service)
        for (account, _), statuses in zip(pairs, login_probe.statuses_of(pairs), strict=True)
        for service, code in statuses.items()
        if code != 401
    ]
    assert accepted == [], f"these logged in after the job ended: {accepted}"


def test_a_commit_cannot_make_the_master_read_through_a_link(push, testbed):
    """A commit whose pipeline file is a link to the master's own secret gets a failed
    pipeline that runs no job and shows nothing of the file."""
    secret_file = f"{master_secrets(testbed)}/change-password"
    linked = push("linked", change=f"ln -sfn {secret_file} .wp5-pipeline.yml")
    assert linked.pipeline["result"] == "failure", linked.pipeline
    assert linked.pipeline["jobs"] == []
    said = "\n".join(linked.pipeline["output_tail"] or [])
    assert ".wp5-pipeline.yml is not a regular file" in said, linked.pipeline
    secret = testbed.host(testbed.group("buildbot_master")[0]).file(secret_file).content_string
    assert secret.strip() and secret.strip() not in yaml.safe_dump(linked.pipeline)


class ProjectWrites:
    """A directory user's writes at the git server and the registry, from the service node."""

    def __init__(self, testbed: Any, service: Any, probe: LoginProbe) -> None:
        self.service = service
        self.probe = probe
        registry = testbed.group("container_registry")[0]
        self.registry = f"https://{registry}:{testbed.value('container_registry_port')}/v2"

    def upload_status(self, user: NewUser, password: str, namespace: str) -> int:
        config = f"{self.probe.folder}/{user.name}.curl"
        write_private_file(self.service, config, f'user = "{user.name}:{password}"\n')
        out = self.service.run(
            f"curl -s -o /dev/null -w '%{{http_code}}' -K {config} --cacert {self.probe.ca} "
            f"-X POST {shlex.quote(f'{self.registry}/{namespace}/probe/blobs/uploads/')}"
        )
        return int(out.stdout.strip() or 0)

    def mlflow_status(self, user: NewUser, password: str, path: str, body: dict[str, Any]) -> int:
        """The status of one POST to MLflow's API as `user`."""
        config = f"{self.probe.folder}/{user.name}.curl"
        write_private_file(self.service, config, f'user = "{user.name}:{password}"\n')
        url = self.probe.urls["mlflow"].split("/api/", 1)[0] + path
        out = self.service.run(
            f"curl -s -o /dev/null -w '%{{http_code}}' -K {config} --cacert {self.probe.ca} "
            f"-H 'Content-Type: application/json' -X POST -d {shlex.quote(json.dumps(body))} "
            f"{shlex.quote(url)}"
        )
        return int(out.stdout.strip() or 0)


def test_only_a_projects_members__write_to_its_repository_and_namespace(
    testbed, service, newcomers, login_probe
):
    """A directory user outside the repository's project reads the registry and may not
    push to the repository nor upload into its namespace; a member may do both."""
    writes = ProjectWrites(testbed, service, login_probe)
    outsider = newcomers.add([])
    member = newcomers.add(["research"])
    outsider_password = newcomers.password(outsider)
    member_password = newcomers.password(member)
    # The directory's answers reach the node's cache within its period.
    statuses = login_probe.statuses(outsider.name, outsider_password)
    assert statuses["registry"] == 200, statuses
    assert statuses["git push"] == 401, statuses
    assert writes.upload_status(outsider, outsider_password, REPOSITORY) == 401
    assert login_probe.statuses(member.name, member_password)["git push"] == 200
    assert writes.upload_status(member, member_password, REPOSITORY) == 202


def test_only_a_projects_members_write_its_experiments(
    testbed, service, newcomers, login_probe, mlflow
):
    """An experiment named after a repository is its project's: a member of the project
    writes runs to it, a user outside it reads it but may neither write a run to it nor
    create or rename an experiment to such a name."""
    writes = ProjectWrites(testbed, service, login_probe)
    outsider = newcomers.add([])
    member = newcomers.add(["research"])
    outsider_password = newcomers.password(outsider)
    member_password = newcomers.password(member)
    # Made by the CI account, a member: the project's, shared with every other member.
    made = mlflow(
        "/api/2.0/mlflow/experiments/create",
        {"name": f"{REPOSITORY}/members-{uuid.uuid4().hex[:8]}"},
    )
    experiment = {"experiment_id": str(made["experiment_id"])}
    assert login_probe.statuses(outsider.name, outsider_password)["mlflow"] == 200
    assert login_probe.statuses(member.name, member_password)["mlflow"] == 200
    found = {
        "outsider reads": writes.mlflow_status(
            outsider, outsider_password, "/api/2.0/mlflow/experiments/search", {"max_results": 5}
        ),
        "outsider writes a run": writes.mlflow_status(
            outsider, outsider_password, "/api/2.0/mlflow/runs/create", experiment
        ),
        "outsider names an experiment after the repository": writes.mlflow_status(
            outsider,
            outsider_password,
            "/api/2.0/mlflow/experiments/create",
            {"name": f"{REPOSITORY}/outsider-{uuid.uuid4().hex[:8]}"},
        ),
        "member writes a run": writes.mlflow_status(
            member, member_password, "/api/2.0/mlflow/runs/create", experiment
        ),
    }
    assert found == {
        "outsider reads": 200,
        "outsider writes a run": 403,
        "outsider names an experiment after the repository": 403,
        "member writes a run": 200,
    }
