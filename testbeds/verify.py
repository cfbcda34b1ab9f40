"""Run a testbed's check suites (pytest + testinfra) against its nodes, with a JUnit report."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from testbeds import check_times, deadlines, paths
from testbeds.errors import TestbedError, printable
from testbeds.nodes import read_nodes

# Check processes at most: the checks wait on nodes far more than they compute.
MAX_CHECK_WORKERS = 4


@dataclass(frozen=True)
class Measurement:
    """A figure a check measured (pytest's record_property), e.g. jobs per second."""

    check: str
    name: str
    value: str


@dataclass(frozen=True)
class VerifyResult:
    rc: int
    tests: int
    failures: int
    errors: int
    skipped: int
    report: Path
    measurements: tuple[Measurement, ...] = ()

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.tests > 0 and self.failures == 0 and self.errors == 0


def report_counts(report: Path) -> tuple[int, int, int, int]:
    if not report.is_file():
        return 0, 0, 0, 0
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = [0, 0, 0, 0]
    for suite in suites:
        for i, key in enumerate(("tests", "failures", "errors", "skipped")):
            total[i] += int(suite.get(key, 0))
    return total[0], total[1], total[2], total[3]


def report_measurements(report: Path) -> tuple[Measurement, ...]:
    if not report.is_file():
        return ()
    return tuple(
        Measurement(case.get("name", ""), prop.get("name", ""), prop.get("value", ""))
        for case in ET.parse(report).getroot().iter("testcase")
        for prop in case.iter("property")
    )


def check_workers(nodes_file: Path) -> int:
    """How many check processes run side by side: one per node plus one for the
    testbed-wide checks, at most MAX_CHECK_WORKERS (TESTBED_CHECK_WORKERS overrides; 1 runs
    them one after another). The checks mostly wait on the nodes, so this beats the core
    count."""
    wanted = os.environ.get("TESTBED_CHECK_WORKERS")
    if wanted is not None:
        if not wanted.isdigit() or int(wanted) < 1:
            raise TestbedError(f"TESTBED_CHECK_WORKERS={printable(wanted)}: give a whole number")
        return int(wanted)
    nodes = len(read_nodes(nodes_file)) if nodes_file.is_file() else 0
    return min(MAX_CHECK_WORKERS, nodes + 1)


def run_checks(
    suites: list[str],
    nodes_file: Path,
    report: Path,
    extra_args: list[str] | None = None,
    quiet: bool = False,
    env: dict[str, str] | None = None,
    testbed: str | None = None,
) -> VerifyResult:
    """Run the suites against the nodes; the checks' times are then kept as the testbed's,
    for the lanes of an instance of it that has no report of its own yet."""
    # The last report orders the lanes (longest first); it is kept aside until this run's.
    last_report = report.with_name(f"{report.stem}-last{report.suffix}")
    if report.is_file():
        report.replace(last_report)
    kept = check_times.kept_file(testbed) if testbed else None
    targets = [str(paths.CHECKS_DIR / suite) for suite in suites]
    workers = check_workers(nodes_file)
    # The lanes come in the order they should start (see testbeds/checks/lanes.py); xdist
    # would otherwise reorder them by their number of checks.
    parallel = (
        ["-n", str(workers), "--dist", "loadgroup", "--no-loadscope-reorder"] if workers > 1 else []
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(paths.CHECKS_DIR / "pytest.ini"),
        "--rootdir",
        str(paths.CHECKS_DIR),
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        "-o",
        "junit_suite_name=testbed-checks",
        *parallel,
        *targets,
        *(extra_args or []),
    ]
    # The caller's own pytest options (a CI report path, say) are not the checks'.
    caller = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    limit_s = deadlines.seconds("verify")
    try:
        proc = subprocess.run(
            command,
            env={
                **caller,
                "TESTBED_NODES_FILE": str(nodes_file),
                "TESTBED_LAST_REPORT": str(last_report),
                **({"TESTBED_CHECK_TIMES": str(kept)} if kept else {}),
                **(env or {}),
            },
            check=False,
            stdout=subprocess.DEVNULL if quiet else sys.stderr,
            stderr=subprocess.STDOUT if not quiet else subprocess.DEVNULL,
            timeout=limit_s,
        )
    except subprocess.TimeoutExpired:
        raise deadlines.DeadlineExpired(
            deadlines.expired("verify", limit_s, f"running the checks {', '.join(suites)}")
        ) from None
    tests, failures, errors, skipped = report_counts(report)
    if testbed and tests:
        check_times.keep(report, testbed)
    return VerifyResult(
        proc.returncode, tests, failures, errors, skipped, report, report_measurements(report)
    )
