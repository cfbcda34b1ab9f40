"""What a test run may leave out, and how CI refuses anything else.

A test that needs something these machines cannot have (a Pulumi CLI, a real cloud or
cluster with credentials) says so with ``@pytest.mark.needs("<what>")``. Where that thing
is missing the test is *deselected* before the run, and the summary says why. Every other
skip is a defect in CI (``CI=true``): the skip is turned into a failure, so a suite can no
longer lose a whole module quietly (an ``importorskip`` of an undeclared dependency, a
fixture that skips for want of a tool CI should have installed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CI_VARIABLE = "CI"
# Where the deselected tests and their reasons are written for `.ci/run`'s summary.
DESELECTED_FILE_VARIABLE = "TESTBED_DESELECTED_FILE"


@dataclass(frozen=True)
class Need:
    """Something a test needs that CI cannot have, and how to tell whether it is here."""

    reason: str
    available: Callable[[], bool]


def _pulumi_cli() -> bool:
    return shutil.which("pulumi") is not None


def _kube_config() -> bool:
    return bool(os.environ.get("KUBECONFIG")) or (Path.home() / ".kube" / "config").is_file()


# The allow-list: nothing else may be left out of a CI run.
NEEDS: dict[str, Need] = {
    "pulumi_cli": Need(
        "needs the Pulumi CLI, which cannot be installed on these machines", _pulumi_cli
    ),
    "openstack_cloud": Need(
        "needs an OpenStack cloud (OS_CLOUD and its clouds.yaml) and the Pulumi CLI",
        lambda: bool(os.environ.get("OS_CLOUD")) and _pulumi_cli(),
    ),
    "kubernetes_cluster": Need(
        "needs a Kubernetes cluster (KUBECONFIG) and the Pulumi CLI",
        lambda: _kube_config() and _pulumi_cli(),
    ),
}


def in_ci() -> bool:
    return os.environ.get(CI_VARIABLE, "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(what): the test needs something CI cannot have; one of: " + ", ".join(NEEDS),
    )
    config.stash[_DESELECTED] = Counter()


_DESELECTED = pytest.StashKey[Counter[str]]()
_WORKER_OUTPUT_KEY = "testbed_deselected"


def _needs_of(item: pytest.Item) -> list[str]:
    wanted: list[str] = []
    for mark in item.iter_markers("needs"):
        for what in mark.args:
            if what not in NEEDS:
                raise pytest.UsageError(
                    f"{item.nodeid}: needs({what!r}) is not in the allow-list "
                    f"({', '.join(NEEDS)}); add it to tests/ci_policy.py with its reason"
                )
            wanted.append(what)
    return wanted


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    reasons = config.stash[_DESELECTED]
    for item in items:
        missing = [what for what in _needs_of(item) if not NEEDS[what].available()]
        if missing:
            dropped.append(item)
            reasons[NEEDS[missing[0]].reason] += 1
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI ({reason}): only tests marked needs(...) from the allow-list in "
            "tests/ci_policy.py may be left out of a CI run"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_skip_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_skip_in_ci(report)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand the deselection reasons to the controller, which
    collects nothing itself and writes the summary."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        reasons: Counter[str] = session.config.stash[_DESELECTED]
        output[_WORKER_OUTPUT_KEY] = dict(reasons.items())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the controller: every worker collected (and deselected) the same tests, so each
    reason counts once, not once per worker."""
    reasons: Counter[str] = node.config.stash[_DESELECTED]
    for reason, count in (
        (getattr(node, "workeroutput", None) or {}).get(_WORKER_OUTPUT_KEY, {}).items()
    ):
        reasons[reason] = max(reasons[reason], count)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reasons: Counter[str] = terminalreporter.config.stash[_DESELECTED]
    if reasons:
        terminalreporter.section("deselected, with the reason")
        for reason, count in sorted(reasons.items()):
            terminalreporter.line(f"{count} deselected: {reason}")
    target = os.environ.get(DESELECTED_FILE_VARIABLE)
    if target:
        Path(target).write_text(json.dumps(dict(reasons), indent=2) + "\n", encoding="utf-8")
