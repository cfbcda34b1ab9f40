#!/usr/bin/python3
"""wp5-hpc-job --image REF --digest SHA256 [--gpu]: run a pipeline job's script on the cluster.

Run by the HPC gateway's Buildbot worker, as the CI account, in the job's checkout, with
the job's script in $WP5_JOB_SCRIPT (never a file of the checkout, whose names a commit
controls). The image runs by the digest the master pinned (the one a job of the same
pipeline pushed, from the registry's own log; never what the tag says now, which a member
could have moved). It copies the checkout to the account's shared home, submits a Slurm
job that pulls that digest with Charliecloud and runs the script in it, waits, prints the
job's output and exits with its exit code: the pipeline's job is green or red with the
Slurm job. Standard library only (the gateway's system Python).

Each run is recorded in MLflow (MLFLOW_TRACKING_*, as the CI account), in the project's
experiment: the commit, the exact image, the Slurm job's id, node and exit code, and the
tags the script wrote to $WP5_RUN_TAGS (key=value lines, such as the dataset it read).

The job's own registry credential comes from its environment (CI_REGISTRY_USER and
CI_REGISTRY_PASSWORD, minted for this job and revoked when it ends), reaches the Slurm job
the same way and is dropped before the script starts. Every file the gateway writes or
reads back is in a job folder it makes itself, opened without following links.

Where the gateway's settings name a datalake and the master minted this job datalake
tokens ($WP5_DATALAKE_TOKENS, which never reach the Slurm job), what the script left in
$WP5_RESULTS goes into Rucio after a green job (datalake_results.py); a job whose results
cannot go there is red, saying why."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from testbeds.nodeside.datalake_results import Datalake, DatalakeError, publish
from testbeds.nodeside.datalake_tokens import ENVIRONMENT_VARIABLE as DATALAKE_TOKENS
from testbeds.nodeside.datalake_tokens import JobTokens
from testbeds.nodeside.own_files import open_regular

CONFIG = Path("/etc/wp5-hpc-job.json")
# Variables an image reference may name (the pipeline file's words).
IMAGE_VARIABLES = ("CI_REGISTRY", "CI_PROJECT", "CI_COMMIT_SHA")
REFERENCE = re.compile(
    r"^(?P<registry>[a-z0-9.-]+(:[0-9]{1,5})?)/(?P<name>[a-z0-9][a-z0-9._/-]*):"
    r"(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})$"
)
# The Slurm job: pull the digest into node-local storage, run the script in the image with
# the shared filesystems bound, remove the image. Values come as WP5_* variables.
BATCH = """#!/bin/bash
set -euo pipefail
scratch=$(mktemp -d "${TMPDIR:-/tmp}/wp5-hpc-image.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
storage=$scratch/storage  # ch-image makes it: it refuses a folder it did not
echo "wp5-hpc-job: Slurm job $SLURM_JOB_ID on $(hostname), image $WP5_IMAGE"
log=$scratch/pull.log
CH_IMAGE_USERNAME=$CI_REGISTRY_USER CH_IMAGE_PASSWORD=$CI_REGISTRY_PASSWORD \\
  ch-image --storage "$storage" --no-cache --auth pull "$WP5_IMAGE" job > "$log" 2>&1 \\
  || { cat "$log" >&2; exit 125; }
unset CI_REGISTRY_PASSWORD MLFLOW_TRACKING_PASSWORD
status=0
ch-run {binds} -c "$WP5_WORK" "$storage/img/job" -- /bin/sh -eu "$WP5_SCRIPT" || status=$?
echo "wp5-hpc-job: script exited with $status"
exit $status
"""


# Tags a script may set ($WP5_RUN_TAGS): plain keys, short values, a few of them; the
# runner's own tags (below) are not theirs to change.
SCRIPT_TAG = re.compile(r"^([A-Za-z0-9_.-]{1,64})=(.{0,500})$")
MAX_SCRIPT_TAGS = 20


class JobError(Exception):
    """What stops the job before it runs, in one line."""


@dataclass(frozen=True)
class Settings:
    cpu_partition: str
    gpu_partition: str
    gpu_gres: str
    time_limit: str
    jobs_dir: str  # under the account's home, which every compute node mounts
    binds: tuple[str, ...]
    ca_file: str
    # Where a job's results go, if the instance has a datalake (datalake_results.py).
    datalake: Datalake | None = None

    @classmethod
    def read(cls, path: Path = CONFIG) -> Settings:
        values = json.loads(path.read_text())
        datalake = values.get("datalake")
        return cls(
            **{
                **values,
                "binds": tuple(values["binds"]),
                "datalake": Datalake.from_settings(datalake) if datalake else None,
            }
        )


def image_reference(template: str, environment: dict[str, str]) -> re.Match[str]:
    values = {name: environment.get(name, "") for name in IMAGE_VARIABLES}
    try:
        reference = string.Template(template).substitute(values)
    except (KeyError, ValueError) as error:
        named = ", ".join(IMAGE_VARIABLES)
        raise JobError(f"image {template!r}: only {named} may be named") from error
    match = REFERENCE.match(reference)
    if match is None:
        raise JobError(f"image {reference!r} is not registry/name:tag")
    # A project's HPC jobs run only images of its own registry namespace, which only its
    # members and its own jobs write to.
    project = environment.get("CI_PROJECT", "")
    if match["registry"] != environment.get("CI_REGISTRY") or not match["name"].startswith(
        f"{project}/"
    ):
        raise JobError(f"image {reference!r} is not in this project's namespace ({project}/)")
    return match


DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def checked_digest(value: str) -> str:
    if not DIGEST.match(value):
        raise JobError(f"--digest {value[:80]!r} is not sha256:<64 hex digits>")
    return value


def basic_authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def job_name(environment: dict[str, str]) -> str:
    """The pipeline job's name, as a plain word for Slurm's job name and the job folder."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", environment.get("CI_JOB_NAME", "job"))[:40]


def job_folder(settings: Settings, name: str, environment: dict[str, str]) -> Path:
    commit = re.sub(r"[^0-9a-f]", "", environment.get("CI_COMMIT_SHA", ""))[:12]
    folder = Path.home() / settings.jobs_dir / f"{name}-{commit}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True, mode=0o700)
    return folder


def sbatch_command(settings: Settings, folder: Path, name: str, gpu: bool) -> list[str]:
    where = (
        [f"--partition={settings.gpu_partition}", f"--gres={settings.gpu_gres}"]
        if gpu
        else [f"--partition={settings.cpu_partition}"]
    )
    return [
        "sbatch",
        "--parsable",
        "--wait",
        f"--job-name=ci-{name}",
        f"--output={folder}/slurm.out",
        f"--chdir={folder}",
        f"--time={settings.time_limit}",
        *where,
        str(folder / "job.sh"),
    ]


@dataclass(frozen=True)
class Outcome:
    """What the Slurm job was, for its record."""

    job_id: str
    node: str
    exit_code: int
    started_ms: int
    ended_ms: int


def read_own_file(path: Path, limit: int = 1 << 20) -> str | None:
    """A regular file of the job folder, opened without following a link (the job could
    have put one there), or None."""
    opened = open_regular(path)
    if opened is None:
        return None
    with opened:
        return opened.read(limit).decode(errors="replace")


def write_own_file(path: Path, text: str, mode: int) -> None:
    """A new file of the job folder: never through a link, never over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def script_tags(path: Path) -> dict[str, str]:
    """The tags the script wrote, each line checked; anything else is ignored, said once."""
    text = read_own_file(path)
    if text is None:
        return {}
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines()[:MAX_SCRIPT_TAGS], 1):
        match = SCRIPT_TAG.match(line)
        if match is None:
            print(f"wp5-hpc-job: run tags: ignored line {number}, which is not key=value")
            continue
        found[match[1]] = match[2]
    return found


class Tracking:
    """The MLflow REST calls that record a run, as the CI account, verified against the CA."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.base = environment.get("MLFLOW_TRACKING_URI", "").rstrip("/")
        self.authorization = basic_authorization(
            environment.get("MLFLOW_TRACKING_USERNAME", ""),
            environment.get("MLFLOW_TRACKING_PASSWORD", ""),
        )
        ca_file = environment.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
        self.context = ssl.create_default_context(cafile=ca_file)

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Authorization": self.authorization, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:
            return json.loads(answer.read() or b"{}")

    def experiment(self, name: str) -> str:
        query = urllib.parse.urlencode({"experiment_name": name})
        try:
            found = self.call(f"/api/2.0/mlflow/experiments/get-by-name?{query}")
            return str(found["experiment"]["experiment_id"])
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        return str(self.call("/api/2.0/mlflow/experiments/create", {"name": name})["experiment_id"])

    def record(self, name: str, run_name: str, tags: dict[str, str], outcome: Outcome) -> str:
        run = self.call(
            "/api/2.0/mlflow/runs/create",
            {
                "experiment_id": self.experiment(name),
                "run_name": run_name,
                "start_time": outcome.started_ms,
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            },
        )
        run_id = str(run["run"]["info"]["run_id"])
        self.call(
            "/api/2.0/mlflow/runs/update",
            {
                "run_id": run_id,
                "status": "FINISHED" if outcome.exit_code == 0 else "FAILED",
                "end_time": outcome.ended_ms,
            },
        )
        return run_id


def record_run(environment: dict[str, str], exact: str, folder: Path, outcome: Outcome) -> None:
    """The run in MLflow, or one line saying why not: the job's result stands either way."""
    if not environment.get("MLFLOW_TRACKING_URI"):
        return
    tags = script_tags(folder / "run-tags")
    tags.update(
        {
            "git_commit": environment.get("CI_COMMIT_SHA", ""),
            "ci.job": environment.get("CI_JOB_NAME", ""),
            "ci.build": environment.get("CI_BUILD_URL", ""),
            "image": exact,
            "slurm.job_id": outcome.job_id,
            "slurm.node": outcome.node,
            "slurm.exit_code": str(outcome.exit_code),
        }
    )
    project = environment.get("CI_PROJECT", "") or "hpc-jobs"
    run_name = f"{tags['ci.job']}-{tags['git_commit'][:12]}"
    try:
        run_id = Tracking(environment).record(project, run_name, tags, outcome)
    except (OSError, ValueError, KeyError) as error:
        print(f"wp5-hpc-job: MLflow: the run was not recorded: {error}")
        return
    print(f"wp5-hpc-job: MLflow run {run_id} in experiment {project}")


def put_into_datalake(settings: Settings, given: str, folder: Path) -> int:
    """After a green job: its results into the datalake, 0 when they are there (or there is
    nowhere for them to go, said so), 1 saying why not."""
    results = folder / "results"
    if settings.datalake is None:
        return 0
    if not given:
        print(f"wp5-hpc-job: datalake: this project has no client there; results stay in {results}")
        return 0
    try:
        try:
            job = JobTokens.from_json(given)
        except ValueError as error:
            raise DatalakeError(str(error)) from None
        if job.error:
            raise DatalakeError(job.error)
        datalake = settings.datalake.for_project(job.project)
        lines = publish(datalake, job.tokens, settings.ca_file, folder.name, results)
    except DatalakeError as error:
        print(f"wp5-hpc-job: datalake: the results did not go into the datalake: {error}")
        return 1
    for line in lines:
        print(f"wp5-hpc-job: {line}", flush=True)
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    environment = dict(os.environ)
    # The datalake tokens are the gateway's to use after the job: never the Slurm job's.
    tokens = environment.pop(DATALAKE_TOKENS, "")
    reference = image_reference(args.image, environment)
    digest = checked_digest(args.digest)
    exact = f"{reference['registry']}/{reference['name']}@{digest}"
    print(f"wp5-hpc-job: {reference[0]} is {digest}", flush=True)
    script = environment.pop("WP5_JOB_SCRIPT", "")
    if not script.strip():
        raise JobError("the job has no script (WP5_JOB_SCRIPT)")

    name = job_name(environment)
    folder = job_folder(settings, name, environment)
    work = folder / "work"
    # Links in the checkout are copied as links, never followed.
    shutil.copytree(Path.cwd(), work, ignore=shutil.ignore_patterns(".git"), symlinks=True)
    binds = " ".join(f"-b {path}:{path}" for path in settings.binds)
    write_own_file(folder / "job.sh", BATCH.replace("{binds}", binds), 0o700)
    write_own_file(folder / "script.sh", script, 0o600)
    (folder / "results").mkdir(mode=0o700)
    environment.update(
        WP5_IMAGE=exact,
        WP5_WORK=str(work),
        WP5_SCRIPT=str(folder / "script.sh"),
        WP5_RUN_TAGS=str(folder / "run-tags"),
        WP5_RESULTS=str(folder / "results"),
    )
    command = sbatch_command(settings, folder, name, args.gpu)
    started_ms = int(time.time() * 1000)
    submitted = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
    assert submitted.stdout is not None
    job_id = submitted.stdout.readline().strip().split(";")[0]
    if job_id:
        print(f"wp5-hpc-job: submitted Slurm job {job_id} ({' '.join(command[5:-1])})", flush=True)

        def cancel(signum: int, _frame: FrameType | None) -> None:
            subprocess.run(["scancel", job_id], check=False)
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, cancel)
        signal.signal(signal.SIGINT, cancel)
    status = submitted.wait()
    output = read_own_file(folder / "slurm.out", limit=16 << 20)
    print(f"--- output of Slurm job {job_id or '(not submitted)'} ---", flush=True)
    if output is not None:
        print(output, end="", flush=True)
    node = ""
    if job_id:
        accounted = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,User,NodeList,State,ExitCode"],
            capture_output=True,
            text=True,
            check=False,
        )
        line = accounted.stdout.strip()
        print(f"--- accounting: {line or accounted.stderr.strip()}")
        node = line.split("|")[2] if line.count("|") >= 2 else ""
    shutil.rmtree(work, ignore_errors=True)
    print(f"wp5-hpc-job: Slurm job {job_id} exited with {status}")
    if job_id:
        ended_ms = int(time.time() * 1000)
        record_run(environment, exact, folder, Outcome(job_id, node, status, started_ms, ended_ms))
    if status == 0 and job_id:
        return put_into_datalake(settings, tokens, folder)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--image", required=True, help="registry/name:tag ($CI_* filled in)")
    parser.add_argument(
        "--digest", required=True, help="the digest to run, pinned when the pipeline pushed it"
    )
    parser.add_argument("--gpu", action="store_true", help="on a GPU node, with one GPU")
    args = parser.parse_args()
    try:
        sys.exit(run(args, Settings.read()))
    except JobError as error:
        sys.exit(f"wp5-hpc-job: {error}")


if __name__ == "__main__":
    main()
