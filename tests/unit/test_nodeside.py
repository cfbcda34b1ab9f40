"""The Python that runs on the pipelines testbed's nodes, imported and run here: the
Buildbot master's values as the role renders them, the status command on a database of
Buildbot's shape, and the post-receive hook's reading of a real push."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from testbeds.nodeside import hpc_job, image_pins, pipeline_status, post_receive
from testbeds.nodeside.master_settings import Settings
from testbeds.pipeline_file import PipelineFileError, regular_file_blob
from tests.render import REPO, render_role_template


def test_the_master_values_render_into_its_settings(tmp_path: Path) -> None:
    """wp5-master.json, rendered by Ansible for a testbed with a CPU and a GPU worker and an
    HPC gateway (a worker on a Slurm login node), which takes only HPC jobs."""
    hosts = {
        "service": {},
        "worker": {"testbed_traits": {"gpus": 0}},
        "gpu": {"testbed_traits": {"gpus": 2}},
        "gateway": {},
    }
    groups = {
        "buildbot_master": ["service"],
        "buildbot_worker": ["worker", "gpu", "gateway"],
        "slurm_login": ["login", "gateway"],
        "mlflow": ["service"],
        "container_registry": ["service"],
    }
    text = render_role_template(
        "buildbot_master",
        "wp5-master.json.j2",
        tmp_path,
        hosts,
        groups,
        "service",
        {"testbed_secrets_dir": str(tmp_path / "secrets")},
    )
    settings = Settings(json.loads(text))
    assert settings.workers == {"gateway": 0, "gpu": 2, "worker": 0}
    assert settings.gpu_workers == ["gpu"] and settings.cpu_workers == ["worker"]
    assert settings.hpc_workers == ["gateway"]
    assert settings.mlflow_url == "https://service:5001"
    assert settings.registry == "service:5000"
    assert settings.secrets_dir == Path("/var/lib/buildbot/masters/pipelines/secrets")
    # The worker port (exposed) is TLS only, with the master's copies of the host key pair.
    tls = "/var/lib/buildbot/masters/pipelines/tls"
    assert settings.pb_endpoint == (
        f"ssl:9989:privateKey={tls}/hostkey.pem:certKey={tls}/hostcert.pem"
    )
    assert settings.job_tokens_dir == Path("/var/lib/wp5-ci-jobs")
    # CI workers run jobs through the runner the buildbot_worker role installs.
    worker_vars = yaml.safe_load((REPO / "roles/buildbot_worker/vars/main.yml").read_text())
    assert settings.job_runner == worker_vars["__buildbot_worker_job_runner"]


def buildbot_database(path: Path) -> None:
    """The tables and columns the status command reads, as Buildbot 3.7 names them, with one
    pipeline whose second job failed."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE builders (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE workers (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE builds (id INTEGER PRIMARY KEY, number INT, builderid INT, workerid INT,
            buildrequestid INT, results INT, state_string TEXT, started_at INT, complete_at INT);
        CREATE TABLE build_properties (buildid INT, name TEXT, value TEXT, source TEXT);
        CREATE TABLE buildrequests (id INTEGER PRIMARY KEY, buildsetid INT);
        CREATE TABLE buildsets (id INTEGER PRIMARY KEY, parent_buildid INT);
        CREATE TABLE buildset_sourcestamps (buildsetid INT, sourcestampid INT);
        CREATE TABLE sourcestamps (id INTEGER PRIMARY KEY, revision TEXT, branch TEXT);
        CREATE TABLE steps (id INTEGER PRIMARY KEY, buildid INT, number INT, results INT);
        CREATE TABLE logs (id INTEGER PRIMARY KEY, stepid INT, type TEXT);
        CREATE TABLE logchunks (logid INT, first_line INT, content BLOB, compressed INT);
        INSERT INTO builders VALUES (1, 'pipeline'), (2, 'job-cpu');
        INSERT INTO workers VALUES (1, 'orchestrator'), (2, 'worker');
        INSERT INTO sourcestamps VALUES (1, 'abc123', 'main');
        INSERT INTO buildsets VALUES (1, NULL), (2, 1), (3, 1);
        INSERT INTO buildset_sourcestamps VALUES (1, 1);
        INSERT INTO buildrequests VALUES (1, 1), (2, 2), (3, 3);
        INSERT INTO builds VALUES (1, 1, 1, 1, 1, 2, 'failed', 100, 160),
                                  (2, 1, 2, 2, 2, 0, 'finished', 110, 120),
                                  (3, 2, 2, 2, 3, 2, 'failed', 121, 150);
        INSERT INTO build_properties VALUES (2, 'job_name', '"test"', 'Trigger'),
                                            (3, 'job_name', '"train"', 'Trigger');
        INSERT INTO steps VALUES (1, 3, 1, 2);
        INSERT INTO logs VALUES (1, 1, 's');
        INSERT INTO logchunks VALUES (1, 0, 'hcommand\nostarting\neTraceback: boom\n', 0);
        """
    )
    db.commit()
    db.close()


def test_the_status_command_reads_a_pipeline_and_its_failed_job(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    buildbot_database(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (pipeline,) = pipeline_status.pipelines(db, "abc123", lines=5)
    assert (pipeline["result"], pipeline["branch"], pipeline["duration_s"]) == (
        "failure",
        "main",
        60,
    )
    assert [(j["name"], j["result"]) for j in pipeline["jobs"]] == [
        ("test", "success"),
        ("train", "failure"),
    ]
    assert pipeline["jobs"][1]["output_tail"] == ["starting", "Traceback: boom"]
    assert pipeline_status.pipelines(db, "other", lines=5) == []


def test_a_green_hpc_jobs_output_comes_from_its_last_step_with_a_log(tmp_path: Path) -> None:
    """The hidden step that revokes a job's credential comes last and writes no log: the
    Slurm job's output is still the HPC job's result."""
    path = tmp_path / "state.sqlite"
    buildbot_database(path)
    db = sqlite3.connect(path)
    db.executescript(
        """
        INSERT INTO builders VALUES (3, 'job-hpc');
        INSERT INTO builds VALUES (4, 1, 3, 2, 4, 0, 'finished', 150, 159);
        INSERT INTO steps VALUES (2, 4, 1, 0), (3, 4, 2, 0);
        INSERT INTO logs VALUES (2, 2, 's');
        INSERT INTO logchunks VALUES (2, 0, 'oSlurm job 7 exited with 0\n', 0);
        """
    )
    db.commit()
    row = pipeline_status.build_row(db, 4, lines=5)
    assert row["output_tail"] == ["Slurm job 7 exited with 0"]


def test_a_failed_steps_own_text_log_is_its_output(tmp_path: Path) -> None:
    """The pipeline step's error log (a text log, lines without a stream prefix) is what a
    failed pipeline shows: why its file was refused."""
    path = tmp_path / "state.sqlite"
    buildbot_database(path)
    db = sqlite3.connect(path)
    db.executescript(
        """
        INSERT INTO steps VALUES (4, 1, 2, 2);
        INSERT INTO logs VALUES (4, 4, 't');
        INSERT INTO logchunks VALUES (4, 0, '.wp5-pipeline.yml is not a regular file\n', 0);
        """
    )
    db.commit()
    assert pipeline_status.output_tail(db, 1, lines=5) == [
        ".wp5-pipeline.yml is not a regular file"
    ]


def test_the_hook_reports_each_pushed_branch(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "research.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "model.py").write_text("x = 1\n")
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    monkeypatch.setenv("REMOTE_USER", "developer")
    lines = [
        f"{post_receive.ZERO} {head} refs/heads/main",
        f"{post_receive.ZERO} {head} refs/tags/v1",
    ]
    (change,) = post_receive.changes(lines, "https://service/git/research.git")
    assert change["branch"] == "main" and change["revision"] == head
    assert change["files"] == ["model.py"] and change["who"] == "developer"
    assert change["comments"] == "first" and change["project"] == "research"
    assert change["src"] == "git"  # the name the master's addChange takes
    # Without its configuration (or while seeding) the hook does nothing and the push stands.
    assert post_receive.main(str(tmp_path / "missing.ini")) == 0


HPC_SETTINGS = hpc_job.Settings(
    cpu_partition="cpu",
    gpu_partition="gpu",
    gpu_gres="gpu:1",
    time_limit="00:20:00",
    jobs_dir=".wp5-hpc-jobs",
    binds=("/home", "/shared"),
    ca_file="/etc/grid-security/ca.pem",
)


def test_hpc_job_fills_in_the_image_from_the_jobs_variables_alone() -> None:
    env = {
        "CI_REGISTRY": "service:5000",
        "CI_PROJECT": "research-analysis",
        "CI_COMMIT_SHA": "ab12",
    }
    found = hpc_job.image_reference("$CI_REGISTRY/${CI_PROJECT}/analysis:$CI_COMMIT_SHA", env)
    assert (found["registry"], found["name"], found["tag"]) == (
        "service:5000",
        "research-analysis/analysis",
        "ab12",
    )
    for template, message in [
        ("$HOME/x:1", "only CI_REGISTRY, CI_PROJECT, CI_COMMIT_SHA may be named"),
        ("$CI_REGISTRY/x", "is not registry/name:tag"),
        ("$CI_REGISTRY/x:1 --privileged", "is not registry/name:tag"),
        ("$CI_REGISTRY/$CI_PROJECT/x:$CI_COMMIT_SHA", "is not registry/name:tag"),  # no project
    ]:
        with pytest.raises(hpc_job.JobError, match=message):
            hpc_job.image_reference(template, {**env, "CI_PROJECT": ""})
    # Only the project's own namespace, at the testbed's registry.
    for template in (
        "$CI_REGISTRY/research-pipeline/model:$CI_COMMIT_SHA",
        "$CI_REGISTRY/research-analysis-other/analysis:1",
        "elsewhere:5000/$CI_PROJECT/analysis:1",
    ):
        with pytest.raises(hpc_job.JobError, match="is not in this project's namespace"):
            hpc_job.image_reference(template, env)


def push_line(user: str, uri: str, digest: str, status: int = 201) -> str:
    """A line of the registry's push log as its nginx writes it."""
    return json.dumps(
        {"time": "2026-12-06T12:00:00+00:00", "user": user, "uri": uri, "status": status,
         "digest": digest}
    )  # fmt: skip


def test_an_hpc_job_runs_the_digest_its_own_pipeline_pushed(tmp_path: Path) -> None:
    """The pin is the last digest pushed under the job's name:tag by a credential of its
    own pipeline; a member's later push of the same tag, a refused put, a put by digest,
    another name or a foreign line pin nothing."""
    ours, members, other = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
    log = tmp_path / "pushes.log"
    uri = "/v2/research-analysis/analysis/manifests/ab12"
    job = "ci-job-1111111111111111"
    log.write_text(
        "\n".join(
            [
                push_line("ci-job-0a0a0a0a0a0a0a0a", uri, other),  # another pipeline's job
                push_line(job, uri, ours),
                push_line("alice", uri, members),  # a member moves the tag afterwards
                push_line(job, uri, other, status=401),
                push_line(job, uri.replace("ab12", other), other),  # a put by digest
                push_line(job, uri.replace("analysis/manifests", "other/manifests"), other),
                "not json",
                '["a list"]',
            ]
        )
        + "\n"
    )  # fmt: skip
    pushers = {job}
    assert image_pins.pinned_digest(log, "research-analysis/analysis", "ab12", pushers) == ours
    assert image_pins.pinned_digest(log, "research-analysis/analysis", "ab12", {"x"}) is None
    assert image_pins.pinned_digest(tmp_path / "absent", "a/b", "c", pushers) is None
    template = "$CI_REGISTRY/$CI_PROJECT/analysis:$CI_COMMIT_SHA"
    found = image_pins.name_and_tag(template, "service:5000", "research-analysis", "ab12")
    assert found == ("research-analysis/analysis", "ab12")
    with pytest.raises(ValueError, match="namespace"):
        image_pins.name_and_tag("$CI_REGISTRY/other/x:1", "service:5000", "research-analysis", "ab")


def test_the_gateway_takes_only_a_plain_digest() -> None:
    assert hpc_job.checked_digest("sha256:" + "0" * 64) == "sha256:" + "0" * 64
    for bad in ("", "sha256:abc", "latest", "sha256:" + "0" * 64 + " --privileged"):
        with pytest.raises(hpc_job.JobError, match="--digest"):
            hpc_job.checked_digest(bad)


def test_hpc_job_asks_slurm_for_a_gpu_only_when_tagged(tmp_path: Path) -> None:
    cpu = hpc_job.sbatch_command(HPC_SETTINGS, tmp_path, "analyse", gpu=False)
    gpu = hpc_job.sbatch_command(HPC_SETTINGS, tmp_path, "analyse", gpu=True)
    assert "--partition=cpu" in cpu and not any(a.startswith("--gres") for a in cpu)
    assert {"--partition=gpu", "--gres=gpu:1"} <= set(gpu)
    assert cpu[:3] == ["sbatch", "--parsable", "--wait"] and cpu[-1] == f"{tmp_path}/job.sh"


def test_hpc_job_takes_only_plain_tags_from_the_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "run-tags"
    assert hpc_job.script_tags(written) == {}
    written.write_text("dataset=user.researcher:events\nfiles=3\nnot a tag\nbad key!=1\n")
    assert hpc_job.script_tags(written) == {"dataset": "user.researcher:events", "files": "3"}
    said = capsys.readouterr().out
    assert said.count("ignored line") == 2 and "not a tag" not in said
    written.write_text("".join(f"k{i}=v\n" for i in range(50)))
    assert len(hpc_job.script_tags(written)) == hpc_job.MAX_SCRIPT_TAGS


def test_hpc_job_reads_and_writes_its_job_files_without_following_links(tmp_path: Path) -> None:
    """A job (or a commit) that leaves a link where the gateway writes its script or reads
    the job's tags and output changes nothing outside the job folder and reads nothing."""
    secret = tmp_path / "authorized_keys"
    secret.write_text("key=of the ci account\n")
    folder = tmp_path / "job"
    folder.mkdir()
    for name in ("run-tags", "slurm.out", "script.sh"):
        (folder / name).symlink_to(secret)
    assert hpc_job.script_tags(folder / "run-tags") == {}
    assert hpc_job.read_own_file(folder / "slurm.out") is None
    with pytest.raises(OSError):
        hpc_job.write_own_file(folder / "script.sh", "echo hostile\n", 0o600)
    assert secret.read_text() == "key=of the ci account\n"
    hpc_job.write_own_file(folder / "new.sh", "echo ok\n", 0o600)
    assert hpc_job.read_own_file(folder / "new.sh") == "echo ok\n"


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ("", "the commit has no .wp5-pipeline.yml"),
        ("120000 blob 0123abcd\t.wp5-pipeline.yml\n", r"is not a regular file \(mode 120000\)"),
        ("040000 tree 0123abcd\t.wp5-pipeline.yml\n", r"is not a regular file \(mode 040000\)"),
        ("160000 commit 0123abcd\t.wp5-pipeline.yml\n", r"is not a regular file \(mode 160000\)"),
    ],
)
def test_the_master_reads_the_pipeline_file_only_as_a_regular_file(
    listing: str, message: str
) -> None:
    """The master reads .wp5-pipeline.yml from git's objects, and only a regular file's:
    a commit making it a link to the master's secrets gets an error, not the secret."""
    with pytest.raises(PipelineFileError, match=message):
        regular_file_blob(listing)
    assert regular_file_blob("100644 blob 0123abcd\t.wp5-pipeline.yml\n") == "0123abcd"
    assert regular_file_blob("100755 blob 4567cdef\t.wp5-pipeline.yml\n") == "4567cdef"


def test_a_pipeline_file_listing_is_read_by_its_first_three_fields() -> None:
    """`git ls-tree` ends a line with the path, which may hold spaces."""
    assert regular_file_blob("100644 blob 0123abcd\tdir with spaces/.wp5-pipeline.yml") == (
        "0123abcd"
    )
