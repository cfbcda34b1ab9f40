"""`testbed verify` runs checks side by side with pytest-xdist: the testbed-wide checks of one
lane must stay in one process, one after another (they share state), and the report must
name each check as a sequential run would. Proven on a small suite using the checks' own hooks."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SUITE = """
import os
import time
from pathlib import Path

import pytest

OUT = Path(os.environ["GROUPING_OUT"])


def record(name):
    OUT.joinpath(name).write_text(os.environ.get("PYTEST_XDIST_WORKER", "main"))
    time.sleep(0.2)


@pytest.mark.parametrize("node", ["cpu1", "cpu2", "gpu"])
def test_per_node(node):
    record(f"node-{node}")


@pytest.mark.parametrize("n", range(6))
def test_testbed_wide(n):
    record(f"wide-{n}")
"""

CONFTEST = """
from testbeds.checks.conftest import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_xdist_make_scheduler,
)
"""


def test_testbed_wide_checks_share_one_worker_and_keep_their_names(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(SUITE)
    out = tmp_path / "out"
    out.mkdir()
    report = tmp_path / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "3", "--dist",
         "loadgroup", f"--junitxml={report}", "-o", "addopts=", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"GROUPING_OUT": str(out), "PATH": "/usr/bin:/bin",
             "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    wide = {p.read_text() for p in out.glob("wide-*")}
    assert len(list(out.glob("wide-*"))) == 6
    assert len(wide) == 1, f"testbed-wide checks ran in {sorted(wide)}"
    names = sorted(case.get("name", "") for case in ET.parse(report).getroot().iter("testcase"))
    assert "test_per_node[cpu1]" in names and "test_testbed_wide[0]" in names
    assert not [n for n in names if "@" in n]


def test_lanes_keep_shared_state_together_and_let_workloads_overlap() -> None:
    """Checks sharing state stay in one lane (the data suites; the pipelines and the
    composition's scenarios, which push to one repository; the composition's data-to-HPC
    checks, which push nothing, go with the data); each hpc_services module, a
    workload of its own on the cluster, gets a lane; other suites one each."""
    from types import SimpleNamespace

    from testbeds.checks.lanes import lane as _lane

    def lane(path: str) -> str:
        return _lane(SimpleNamespace(path=Path("/checks") / path))  # type: ignore[arg-type]

    assert lane("tokens/test_a.py") == lane("storage_endpoints/test_b.py")
    assert lane("tokens/test_a.py") == lane("data_management/test_c.py")
    assert lane("pipelines/test_pipeline.py") == lane("composition/test_scenario.py")
    assert lane("composition/test_data_to_hpc.py") == lane("data_management/test_c.py")
    assert lane("hpc_services/test_analysis.py") != lane("hpc_services/test_jupyterhub.py")
    assert lane("identity/test_directory.py") != lane("slurm_core/test_slurm.py")
    assert lane("pipelines/test_pipeline.py") != lane("tokens/test_a.py")


def test_lanes_start_longest_first_by_the_last_report(tmp_path: Path) -> None:
    """The lane that took longest in the last report starts first; a lane the report does not
    know starts before the per-node lanes it does not know; checks keep their order within a
    lane."""
    from types import SimpleNamespace

    from testbeds.check_times import from_report
    from testbeds.checks.lanes import longest_first

    report = tmp_path / "report.xml"
    report.write_text(
        "<testsuites><testsuite>"
        '<testcase classname="hpc_services.test_htc" name="test_array" time="20"/>'
        '<testcase classname="hpc_services.test_jupyterhub" name="test_a" time="30"/>'
        '<testcase classname="hpc_services.test_jupyterhub" name="test_b" time="40"/>'
        '<testcase classname="base.test_os" name="test_ok[cpu1]" time="1"/>'
        "</testsuite></testsuites>"
    )
    nodeids = [
        "base/test_os.py::test_ok[cpu1]",
        "base/test_os.py::test_new[cpu1]",
        "hpc_services/test_htc.py::test_array",
        "hpc_services/test_jupyterhub.py::test_a",
        "hpc_services/test_jupyterhub.py::test_b",
        "hpc_services/test_new.py::test_c",
    ]
    names = ["node-cpu1", "node-cpu1", "testbed-htc", "testbed-hub", "testbed-hub", "testbed-new"]
    items = [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]
    order = longest_first(items, names, from_report(report))  # type: ignore[arg-type]
    assert [nodeids[i] for i in order] == [
        "hpc_services/test_new.py::test_c",
        "hpc_services/test_jupyterhub.py::test_a",
        "hpc_services/test_jupyterhub.py::test_b",
        "hpc_services/test_htc.py::test_array",
        "base/test_os.py::test_ok[cpu1]",
        "base/test_os.py::test_new[cpu1]",
    ]
    assert from_report(tmp_path / "missing.xml") == {}


def test_without_a_report_of_its_own_the_testbeds_kept_times_order_the_lanes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new instance (a CI job's) has no last report: the lanes start longest first by the
    times kept from the testbed's last verify on this machine (names and seconds only, in a
    file only its owner reads)."""
    import stat

    from testbeds import check_times

    checks = tmp_path / "checks"
    for suite in ("alpha", "beta"):
        (checks / suite).mkdir(parents=True)
        (checks / suite / f"test_{suite}.py").write_text(f"def test_{suite}():\n    pass\n")
    (checks / "conftest.py").write_text(CONFTEST)
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuite><testcase classname="alpha.test_alpha" name="test_alpha" time="3"/>'
        '<testcase classname="beta.test_beta" name="test_beta" time="90"/></testsuite>'
    )
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    check_times.keep(report, "hpc-access")
    kept = check_times.kept_file("hpc-access")
    assert kept.is_relative_to(tmp_path / "cache")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert check_times.read_kept(kept) == check_times.from_report(report)

    def collected(kept_times: Path | None) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
             "-o", "addopts=", str(checks)],
            cwd=checks, capture_output=True, text=True, check=False,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                 **({"TESTBED_CHECK_TIMES": str(kept_times)} if kept_times else {})},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:]
        return [line.split("::")[-1] for line in proc.stdout.splitlines() if "::" in line]

    assert collected(None) == ["test_alpha", "test_beta"]
    assert collected(kept) == ["test_beta", "test_alpha"]
    # A verify of some checks only (`-k alpha`) updates theirs and forgets no other.
    partial = tmp_path / "partial.xml"
    partial.write_text(
        '<testsuite><testcase classname="alpha.test_alpha" name="test_alpha" time="200"/>'
        "</testsuite>"
    )
    check_times.keep(partial, "hpc-access")
    assert check_times.read_kept(kept) == {
        ("alpha.test_alpha", "test_alpha"): 200.0,
        ("beta.test_beta", "test_beta"): 90.0,
    }
    assert collected(kept) == ["test_alpha", "test_beta"]
    kept.write_text("not json")
    assert check_times.read_kept(kept) == {}
    assert collected(kept) == ["test_alpha", "test_beta"]
