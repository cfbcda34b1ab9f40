"""Pipelines to HPC: a commit pushed to the analysis repository builds its image on a CI
worker and pushes it; the job tagged hpc and gpu runs on the cluster's GPU node as a Slurm
job of the ci account, in exactly that image (by digest), and the pipeline is green or red
with the Slurm job, showing its output."""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from testbeds.checks.helpers import wait_for, write_private_file
from testbeds.checks.pipelines.support import http_status

ANALYSIS = "research-analysis"
# data/events.csv of the sample: five events, energies 12.5, 7.25, 30, 0.75 and 19.5.
EXPECTED = "data/events.csv: events=5 mean_energy=14.000 max_energy=30.000"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json"


def analysis_pipeline(script: list[str]) -> dict[str, Any]:
    """The analysis repository's pipeline file, its HPC job running this script."""
    image = "$CI_REGISTRY/$CI_PROJECT/analysis:$CI_COMMIT_SHA"
    return {
        "jobs": [
            {"name": "image", "script": ["sh ci/build-image.sh"]},
            {"name": "analyse", "tags": ["hpc", "gpu"], "image": image, "script": script},
        ]
    }


def slurm_job_id(output: list[str]) -> str:
    found = [m[1] for line in output if (m := re.search(r"submitted Slurm job (\d+)", line))]
    assert len(found) == 1, output
    return found[0]


@pytest.fixture(scope="session")
def analysed(push: Callable[..., Any]) -> Any:
    return push("hpc", change="echo 'checked by testbed verify' >> README.md", repository=ANALYSIS)


@pytest.fixture(scope="session")
def analysis_failed(push: Callable[..., Any]) -> Any:
    """A commit whose analysis finds no events (its job prints whether a password reached
    the script's environment first)."""
    script = ["env | grep -c PASSWORD || echo no password in the job environment"]
    pipeline = analysis_pipeline([*script, "analyse data/none.csv"])
    change = (
        f"printf '%s' {shlex.quote(yaml.safe_dump(pipeline))} > .wp5-pipeline.yml && "
        "printf '# event,detector,energy\\n' > data/none.csv && git add data/none.csv"
    )
    return push("hpc-red", change=change, repository=ANALYSIS)


def test_analysis_pipeline_builds_the_image_then_runs_on_the_cluster(analysed, record_property):
    assert analysed.pipeline["result"] == "success", analysed.pipeline
    assert [(j["name"], j["worker"], j["result"]) for j in analysed.pipeline["jobs"]] == [
        ("image", "worker", "success"),
        ("analyse", "gateway", "success"),
    ]
    output = analysed.job("analyse")["output_tail"]
    assert EXPECTED in output, output
    assert "wp5-hpc-job: Slurm job " + slurm_job_id(output) + " exited with 0" in output
    record_property("pipeline_to_hpc_s", f"push to green, HPC job included: {analysed.seconds} s")


def test_hpc_job_is_the_ci_accounts_slurm_job_on_the_gpu_node(analysed, testbed):
    """Accounting on the controller: the job's user, partition, node and state."""
    job = slurm_job_id(analysed.job("analyse")["output_tail"])
    controller = testbed.host(testbed.group("slurm_controller")[0])
    fields = "User,Partition,NodeList,State,ExitCode"

    def record() -> tuple[str, ...]:
        out = controller.run(f"sacct -X -n -P -j {job} -o {fields}")
        assert out.rc == 0, out.stderr
        return tuple(out.stdout.strip().split("|"))

    # slurmdbd may store a busy job's start (its partition) after its end: wait for both.
    expected = ("ci", "gpu", "gpu", "COMPLETED", "0:0")
    assert wait_for(lambda: record() == expected, timeout=30, interval=2), record()
    # The script saw the one GPU Slurm gave it (emulated on the local target).
    output = analysed.job("analyse")["output_tail"]
    assert any(re.fullmatch(r"analyse: on gpu, GPUs: \d", line) for line in output), output


def test_hpc_job_ran_exactly_the_image_the_pipeline_pushed(analysed, registry):
    """The digest the job pulled is the digest of the manifest the registry holds for the
    commit's tag."""
    output = analysed.job("analyse")["output_tail"]
    tag = f"{ANALYSIS}/analysis:{analysed.revision}"
    digest = re.compile(re.escape(tag) + r" is (sha256:\w+)")
    pulled = [m[1] for line in output if (m := digest.search(line))]
    status, manifest = http_status(
        registry(f"/v2/{ANALYSIS}/analysis/manifests/{analysed.revision}", accept=MANIFEST_TYPES)
    )
    assert status == 200, manifest
    assert pulled == ["sha256:" + hashlib.sha256(manifest.encode()).hexdigest()]


# A job between the image job and the HPC job that waits (reading, with its own
# credential) until a member has moved the commit's tag to another manifest.
SWAP_MARK = "org.wp5-testbeds.moved-by-a-member"


def hold_until_moved(ca_file: str) -> list[str]:
    return [
        'url="https://$CI_REGISTRY/v2/$CI_PROJECT/analysis/manifests/$CI_COMMIT_SHA"',
        "for i in $(seq 150); do",
        '  body=$(printf \'user = "%s:%s"\\n\' "$CI_REGISTRY_USER" "$CI_REGISTRY_PASSWORD" |',
        f"    curl -sS -K - --cacert {ca_file} -H 'Accept: {MANIFEST_TYPES}' \"$url\" || true)",
        f'  case "$body" in *{SWAP_MARK}*) echo "the tag was moved"; exit 0;; esac',
        "  sleep 1",
        "done",
        "echo 'the tag was not moved'; exit 1",
    ]


# Run on the service node as a member of the analysis repository's project: wait until the
# image job has pushed the commit's tag, then put another manifest (the same layers, one
# annotation more) under that tag. argv: registry URL, name, tag, password file, user, CA.
MOVE_TAG = f"""
import base64, json, ssl, sys, time, urllib.error, urllib.request
base, name, tag, secret, user, ca = sys.argv[1:7]
auth = "Basic " + base64.b64encode(f"{{user}}:{{open(secret).read().strip()}}".encode()).decode()
ctx = ssl.create_default_context(cafile=ca)
url = f"{{base}}/v2/{{name}}/manifests/{{tag}}"
def call(method, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers={{
        "Authorization": auth, "Accept": "{MANIFEST_TYPES}", "Content-Type": "{MANIFEST_TYPES}"}})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as answer:
        return answer.status, answer.read()
for _ in range(300):
    try:
        status, pushed = call("GET")
        break
    except urllib.error.HTTPError:
        time.sleep(1)
else:
    sys.exit("the image job never pushed " + tag)
manifest = json.loads(pushed)
manifest.setdefault("annotations", {{}})["{SWAP_MARK}"] = "yes"
status, _ = call("PUT", json.dumps(manifest).encode())
print(status)
"""


@pytest.fixture(scope="session")
def moved_tag(push: Callable[..., Any], testbed: Any, service: Any, registry: Any) -> Any:
    """A pipeline whose image job pushes the commit's tag; while it runs, a member of the
    project moves that tag to another manifest before the HPC job starts."""
    pipeline = analysis_pipeline(["analyse data/events.csv"])
    ca_file = testbed.value("testbed_ca_file")
    pipeline["jobs"].insert(1, {"name": "hold", "script": hold_until_moved(ca_file)})
    change = f"printf '%s' {shlex.quote(yaml.safe_dump(pipeline))} > .wp5-pipeline.yml"
    secret = "/root/.wp5-check-member-password"
    password = (testbed.secrets_dir / "user-developer-password").read_text().strip()
    write_private_file(service, secret, password + "\n")
    base = f"https://{testbed.group('container_registry')[0]}:{testbed.value('container_registry_port')}"
    moved: list[str] = []

    def move(revision: str) -> None:
        script = base64.b64encode(MOVE_TAG.encode()).decode()
        out = service.run(
            f"echo {script} | base64 -d > /root/.wp5-move-tag.py && python3 /root/.wp5-move-tag.py "
            f"{base} {ANALYSIS}/analysis {revision} {secret} developer {ca_file}"
        )
        moved.append(out.stdout.strip() + out.stderr.strip()[-300:])

    try:
        pushed = push("hpc-moved", change=change, repository=ANALYSIS, during=move)
    finally:
        service.run(f"rm -f {secret} /root/.wp5-move-tag.py")
    return pushed, moved


def test_an_hpc_job_runs_what_its_pipeline_pushed_even_when_the_tag_moves(moved_tag, registry):
    """The tag a member moves between the image job and the HPC job changes nothing: the
    HPC job runs the digest its own pipeline's image job pushed (pinned from the
    registry's own log of pushes), not the manifest the tag names when it starts."""
    pushed, moved = moved_tag
    assert moved == ["201"], f"the member could not move the tag: {moved}"
    assert pushed.pipeline["result"] == "success", pushed.pipeline
    # The hold job ends green only once it has seen the member's manifest under the tag.
    assert pushed.job("hold")["result"] == "success", pushed.pipeline
    output = pushed.job("analyse")["output_tail"]
    assert EXPECTED in output
    tag = f"{ANALYSIS}/analysis:{pushed.revision}"
    ran = [m[1] for line in output if (m := re.search(re.escape(tag) + r" is (sha256:\w+)", line))]
    status, now = http_status(
        registry(f"/v2/{ANALYSIS}/analysis/manifests/{pushed.revision}", accept=MANIFEST_TYPES)
    )
    assert status == 200 and SWAP_MARK in now, now
    moved_digest = "sha256:" + hashlib.sha256(now.encode()).hexdigest()
    assert len(ran) == 1 and ran[0] != moved_digest, (ran, moved_digest)


def test_failing_hpc_job_turns_the_pipeline_red_with_its_output(analysis_failed):
    assert analysis_failed.pipeline["result"] == "failure", analysis_failed.pipeline
    job = analysis_failed.job("analyse")
    assert job["result"] == "failure"
    output = job["output_tail"]
    assert "data/none.csv: no events" in output, output
    job_id = slurm_job_id(output)
    assert f"wp5-hpc-job: Slurm job {job_id} exited with 1" in output
    # The registry and tracking passwords are dropped before the script starts.
    assert "no password in the job environment" in output


def test_job_folders_keep_the_output_and_no_copy_of_the_checkout(analysed, testbed):
    """What the gateway leaves in the ci account's home: each job's script and output (and
    the results folder it gave the job, kept where they did not go into the datalake)."""
    gateway = testbed.host(testbed.group("hpc_gateway")[0])
    folders = gateway.run("runuser -u ci -- sh -c 'ls -d ~/.wp5-hpc-jobs/analyse-*'")
    assert folders.rc == 0, folders.stderr
    for folder in folders.stdout.split():
        listing = gateway.run(f"runuser -u ci -- ls -A {shlex.quote(folder)}").stdout.split()
        made = {"job.sh", "script.sh", "slurm.out", "results"}
        assert made <= set(listing) <= made | {"run-tags"}, (folder, listing)


# Where the gateway wrote an HPC job's script in the checkout before, and what a commit
# could point it at: the CI account's own SSH keys on the gateway.
OLD_SCRIPT_NAME = ".wp5-hpc-script"
CI_KEYS = "/home/ci/.ssh/authorized_keys"


def ci_keys_state(gateway: Any) -> str:
    out = gateway.run(f"sha256sum {CI_KEYS} 2>/dev/null || echo absent")
    return str(out.stdout.strip())


@pytest.fixture(scope="session")
def linked(push: Callable[..., Any], testbed: Any) -> tuple[Any, str, str]:
    """A commit carrying a link, named like the gateway's old script file, to the CI
    account's authorized_keys; that file's state before and after its pipeline."""
    gateway = testbed.host(testbed.group("hpc_gateway")[0])
    before = ci_keys_state(gateway)
    change = f"ln -s {CI_KEYS} {OLD_SCRIPT_NAME} && git add {OLD_SCRIPT_NAME}"
    pushed = push("hpc-link", change=change, repository=ANALYSIS)
    return pushed, before, ci_keys_state(gateway)


def test_a_link_in_the_commit_changes_nothing_outside_the_job_folder(linked):
    """The HPC job runs green, and the file the commit's link names is what it was: the
    gateway writes the job's files only into a job folder it makes itself."""
    pushed, before, after = linked
    assert pushed.pipeline["result"] == "success", pushed.pipeline
    assert EXPECTED in pushed.job("analyse")["output_tail"]
    assert after == before


def test_only_the_master_holds_the_secret_that_mints_hpc_jobs_datalake_tokens(testbed):
    """The client whose tokens put an HPC job's results into the datalake is the master's:
    its secret is a file only the master's account reads, on the master's node; the gateway,
    where the ci account runs every HPC job, has no copy anywhere it keeps files."""
    secret = (testbed.secrets_dir / "issuer-pipeline-research-password").read_text().strip()
    master = testbed.host(testbed.group("buildbot_master")[0])
    stored = master.file("/var/lib/buildbot/masters/pipelines/secrets/issuer-pipeline-research")
    assert (stored.user, stored.mode) == ("buildbot", 0o400)
    assert stored.content_string.strip() == secret
    gateway = testbed.host(testbed.group("hpc_gateway")[0])
    pattern = "/root/.wp5-check-pattern"
    write_private_file(gateway, pattern, secret + "\n")
    try:
        found = gateway.run(
            f"grep -rlF -f {pattern} /etc /home /var/lib /var/log /usr/local /opt /tmp /root"
            f" --exclude-dir=.cache 2>/dev/null | grep -vx {pattern}"
        )
    finally:
        gateway.run(f"rm -f {pattern}")
    assert found.stdout.strip() == "", found.stdout
