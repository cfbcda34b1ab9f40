"""The analysis role's configs, rendered by Ansible: Dask requires TLS and starts workers from
the shared environment; the kernel and the Spark launcher point at the same environment; the
launcher keeps its secret off every command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.render import render_role_template

HOSTS = {"login": {}, "cpu1": {}}
GROUPS = {"analysis": ["login", "cpu1"], "slurm_compute": ["cpu1"], "nfs_server": []}


def render(template: str, tmp_path: Path, **extra: object) -> str:
    return render_role_template("analysis", template, tmp_path, HOSTS, GROUPS, "cpu1", extra)


def test_dask_requires_tls_and_uses_the_shared_environment(tmp_path: Path) -> None:
    distributed = yaml.safe_load(render("distributed.yaml.j2", tmp_path))
    assert distributed["distributed"]["comm"]["require-encryption"] is True
    slurm = yaml.safe_load(render("jobqueue.yaml.j2", tmp_path))["jobqueue"]["slurm"]
    assert slurm["python"] == "/shared/software/analysis/bin/python"
    assert slurm["memory"] == "512MiB" and slurm["cores"] == 1
    assert "queue" not in slurm  # Slurm's default partition
    assert slurm["scheduler-options"] == {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
    assert "--no-dashboard" in slurm["worker-extra-args"]


def test_dask_partition_when_named(tmp_path: Path) -> None:
    slurm = yaml.safe_load(render("jobqueue.yaml.j2", tmp_path, analysis_dask_partition="cpu"))
    assert slurm["jobqueue"]["slurm"]["queue"] == "cpu"


def test_kernel_runs_the_shared_environment(tmp_path: Path) -> None:
    kernel = json.loads(render("kernel.json.j2", tmp_path))
    assert kernel["argv"] == [
        "/shared/software/analysis/bin/python",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    assert kernel["env"]["SPARK_HOME"].startswith("/shared/software/analysis/lib/python3")


def test_spark_launcher_is_valid_bash_and_keeps_the_secret_in_a_private_file(
    tmp_path: Path,
) -> None:
    script = render("spark-slurm-cluster.j2", tmp_path)
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
    assert "umask 077" in script
    # The secret is written to the conf file only: never an argument or --conf option.
    secret_lines = [line for line in script.splitlines() if "secret" in line]
    assert all("--conf" not in line and "spark-class" not in line for line in secret_lines)
    for setting in (
        "spark.authenticate true",
        "spark.network.crypto.enabled true",
        "spark.ui.enabled false",
        "spark.master.rest.enabled false",
    ):
        assert setting in script, setting
    assert script.count("SPARK_LOCAL_IP=127.0.0.1") == 2  # master and worker web pages
