"""Analysis on large data: the pinned environment on every analysis node, and a Spark
standalone cluster inside a Slurm allocation that spark-submit reaches from the login node.
(Dask from a notebook is checked with JupyterHub, in test_jupyterhub.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from testbeds.checks.helpers import printed_result, wait_for

SPARK_APP = Path(__file__).with_name("spark_aggregate.py")
SPARK_UI_GET = Path(__file__).with_name("spark_ui_get.py")
SPARK_NODES = 2
PINNED = ("dask", "distributed", "dask-jobqueue", "pyspark", "pandas", "pyarrow", "numpy")


@pytest.mark.nodes("analysis")
def test_pinned_environment_and_java(testbed, host):
    """The shared environment imports the pinned versions of the analysis stack, the Jupyter
    kernel points at it, and Java runs (for Spark)."""
    prefix = testbed.value("analysis_prefix")
    pins = dict(
        line.split("==", 1)
        for line in host.file(f"{prefix}/requirements.installed").content_string.splitlines()
        if "==" in line and not line.startswith("#")
    )
    names = " ".join(PINNED)
    found = host.check_output(
        f"{prefix}/bin/python -c 'import sys, importlib.metadata as m; "
        f'print(" ".join(m.version(n) for n in sys.argv[1:]))\' {names}'
    ).split()
    assert dict(zip(PINNED, found, strict=True)) == {name: pins[name] for name in PINNED}
    kernel = json.loads(
        host.file(
            f"/usr/local/share/jupyter/kernels/{testbed.value('analysis_kernel_name')}/kernel.json"
        ).content_string
    )
    assert kernel["argv"][0] == f"{prefix}/bin/python"
    assert host.run("java -version").rc == 0


def spark_job(login, user_shell) -> str:
    out = user_shell(
        login,
        f"sbatch --parsable -N {SPARK_NODES} -t 15 -J spark-check "
        "-o ~/.spark-check-%j.out /usr/local/bin/spark-slurm-cluster",
    )
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def assert_web_ui_only_for_its_owner(testbed, login, user_shell, job: str, conf: str) -> None:
    """The master's web page, on loopback of the allocation's first node, answers 403 to a
    request without the cluster's signed token (here root's, standing for any other user of
    that node) and the page itself to its owner's signed request."""
    nodes = login.check_output(f"squeue -h -j {job} -o %N")
    master_name = login.check_output(f"scontrol show hostnames {nodes}").split()[0]
    master = testbed.host(master_name)
    started = re.search(
        r"'MasterUI' on port (\d+)", user_shell(login, f"cat {conf}/master.log").stdout
    )
    assert started, "the master's log names no web UI port"
    page = f"http://127.0.0.1:{started.group(1)}/"
    unsigned = master.run(f"curl -sS -o /dev/null -w '%{{http_code}}' {page}")
    assert unsigned.stdout.strip() == "403", unsigned.stdout + unsigned.stderr
    user_shell(master, f"cat > ~/spark_ui_get.py <<'EOF'\n{SPARK_UI_GET.read_text()}\nEOF")
    signed = user_shell(
        master,
        f"python3 ~/spark_ui_get.py {conf}/spark-defaults.conf {page}; rm -f ~/spark_ui_get.py",
    )
    assert signed.stdout.split() == ["200", "True"], signed.stdout + signed.stderr


def test_spark_cluster_in_allocation(testbed, user_shell, record_property):
    """The research user starts a Spark standalone cluster inside a two-node allocation
    (master on the first node, a worker on each); spark-submit from the login node computes
    the same per-key sums and counts over the sample dataset as the dataset's generator (and
    so as Dask), to the digit; a driver without the cluster's secret is refused; the master's
    web page answers only its owner's signed request; cancelling
    the job ends the cluster and removes its secret."""
    login = testbed.host(testbed.group("slurm_login")[0])
    dataset = testbed.value("analysis_sample_dataset_dir")
    expected = json.loads(login.check_output(f"cat {dataset}/_expected.json"))
    job = spark_job(login, user_shell)
    conf = f"~/.spark/{job}"
    try:
        assert wait_for(
            lambda: user_shell(login, f"test -e {conf}/ready").rc == 0, timeout=180, interval=2
        ), user_shell(login, f"cat ~/.spark-check-{job}.out {conf}/*.log").stdout[-3000:]
        mode = user_shell(login, f"stat -c %a {conf}/spark-defaults.conf").stdout.strip()
        assert mode == "600", mode
        assert_web_ui_only_for_its_owner(testbed, login, user_shell, job, conf)
        app = SPARK_APP.read_text()
        user_shell(login, f"cat > ~/spark_aggregate.py <<'EOF'\n{app}\nEOF")
        # Beside the real driver, the same one without authentication (and so without
        # encryption, which needs it): the master must refuse it, expecting SASL.
        probe = f"~/.spark-refused-{job}.out"
        user_shell(
            login,
            f"module load analysis && SPARK_CONF_DIR={conf} nohup timeout 90 spark-submit "
            "--conf spark.authenticate=false --conf spark.network.crypto.enabled=false "
            f"--conf spark.io.encryption.enabled=false ~/spark_aggregate.py {dataset} "
            f"> {probe} 2>&1 &",
        )
        submitted = user_shell(
            login,
            f"module load analysis && SPARK_CONF_DIR={conf} "
            f"spark-submit ~/spark_aggregate.py {dataset}",
        )
        assert submitted.rc == 0, submitted.stderr[-3000:]
        result = printed_result(submitted.stdout)
        assert result is not None, submitted.stdout[-2000:] + submitted.stderr[-2000:]
        assert result["per_key"] == expected["per_key"]
        assert result["executors"] == SPARK_NODES, result
        # A JVM starting on a busy node may take tens of seconds to reach the master.
        assert wait_for(
            lambda: "Expected SaslMessage" in user_shell(login, f"cat {conf}/master.log").stdout,
            timeout=90,
            interval=2,
        ), "the master did not log refusing an unauthenticated driver"
        # Refused, it would only retry until its timeout: end it now.
        user_shell(login, "pkill -f 'spark[.]authenticate=false'")
        assert wait_for(
            lambda: user_shell(login, "pgrep -f 'spark[.]authenticate=false'").rc != 0, 30, 1
        )
        assert "RESULT " not in user_shell(login, f"cat {probe}").stdout
        record_property(
            "spark_aggregate",
            f"{expected['rows']:,} rows in {result['compute_s']} s on {SPARK_NODES} workers "
            "(same sums and counts as Dask and the generator)",
        )
    finally:
        user_shell(login, f"scancel {job}")
        user_shell(login, f"rm -f ~/spark_aggregate.py ~/.spark-check-{job}.out ~/.spark-refused-*")
    assert wait_for(
        lambda: not login.run(f"squeue -h -j {job} -o %i").stdout.strip(), timeout=60
    ), f"Spark job {job} still running after scancel"
    assert wait_for(lambda: user_shell(login, f"test -e {conf}").rc != 0, timeout=30), (
        f"{conf} (with the cluster's secret) left behind"
    )
