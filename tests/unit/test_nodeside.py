"""The Python that runs on the pipelines testbed's nodes, imported and run here: the
Buildbot master's values as the role renders them, the status command on a database of
Buildbot's shape, and the post-receive hook's reading of a real push."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from testbeds.nodeside import hpc_job, pipeline_status, post_receive
from testbeds.nodeside.master_settings import Settings
from tests.render import render_role_template


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
        CREATE TABLE logs (id INTEGER PRIMARY KEY, stepid INT);
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
        INSERT INTO logs VALUES (1, 1);
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
    assert capsys.readouterr().out.count("ignored a line") == 2
    written.write_text("".join(f"k{i}=v\n" for i in range(50)))
    assert len(hpc_job.script_tags(written)) == hpc_job.MAX_SCRIPT_TAGS
