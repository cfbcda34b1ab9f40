"""CI's rule for what a run may leave out: a skip fails in CI, a test that needs something
on the allow-list is deselected with its reason, and `.ci/run`'s summary fails on a skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SKIPPING_MODULE = """
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_skips():
    pytest.skip("a tool is missing")
"""

SKIPPED_AT_IMPORT = """
import pytest

pytest.importorskip("a_module_nobody_declared")

def test_never_collected():
    assert True
"""

NEEDS_MODULE = """
import pytest

@pytest.mark.needs("openstack_cloud")
def test_real_cloud():
    raise AssertionError("must not run without a cloud")

def test_runs():
    assert True
"""


def run_fake(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    ci: bool,
    *args: str,
) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("OS_CLOUD", raising=False)
    monkeypatch.delenv("TESTBED_DESELECTED_FILE", raising=False)  # the outer run's
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_fake=source)
    return pytester.runpytest_subprocess("-p", "tests.ci_policy", "-p", "no:cacheprovider", *args)


def test_a_skip_fails_the_run_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In CI a test that skips is reported as failed, with why, and the run exits non-zero."""
    result = run_fake(pytester, monkeypatch, SKIPPING_MODULE, ci=True)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skipped in CI (a tool is missing)*"])


def test_a_module_skipped_at_import_fails_the_run_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole module lost to importorskip is an error in CI, not one quiet 'skipped'."""
    result = run_fake(pytester, monkeypatch, SKIPPED_AT_IMPORT, ci=True)
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*skipped in CI*a_module_nobody_declared*"])


def test_a_skip_outside_ci_stays_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a developer's machine a skip is still a skip (with its reason)."""
    result = run_fake(pytester, monkeypatch, SKIPPING_MODULE, ci=False)
    result.assert_outcomes(passed=1, skipped=1)


def test_a_need_ci_cannot_have_is_deselected_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test marked needs(...) from the allow-list is deselected, never run nor skipped,
    and the summary says why."""
    result = run_fake(pytester, monkeypatch, NEEDS_MODULE, ci=True)
    result.assert_outcomes(passed=1, deselected=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*1 deselected: needs an OpenStack cloud*"])


def test_on_two_workers_the_reasons_reach_the_file_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With pytest-xdist (the README's test command), the workers collect and deselect and
    the controller writes the reasons for `.ci/run`: each counted once, not per worker."""
    reasons = tmp_path / "deselected.json"
    monkeypatch.setenv("TESTBED_DESELECTED_FILE", str(reasons))
    pytester.makepyfile(test_fake=NEEDS_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("OS_CLOUD", raising=False)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess(
        "-p", "tests.ci_policy", "-p", "no:cacheprovider", "-n", "2"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert json.loads(reasons.read_text()) == {
        "needs an OpenStack cloud (OS_CLOUD and its clouds.yaml) and the Pulumi CLI": 1
    }


def test_a_need_outside_the_allow_list_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """needs() cannot grow quietly: an unknown need stops the run."""
    result = run_fake(
        pytester,
        monkeypatch,
        'import pytest\n\n@pytest.mark.needs("gpu")\ndef test_x():\n    assert True\n',
        ci=True,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def summary(tmp_path: Path, report: str) -> subprocess.CompletedProcess[str]:
    xml = tmp_path / "report.xml"
    xml.write_text(report, encoding="utf-8")
    deselected = tmp_path / "deselected.json"
    deselected.write_text('{"needs the Pulumi CLI": 2}', encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "tests.ci_summary", str(xml), str(deselected)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_ci_summary_fails_on_a_skip_and_prints_the_counts(tmp_path: Path) -> None:
    """`.ci/run`'s summary exits 1 when the report has a skip, and says the counts."""
    proc = summary(
        tmp_path,
        '<testsuites><testsuite tests="5" failures="0" errors="0" skipped="1"/></testsuites>',
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert "ci: 2 deselected: needs the Pulumi CLI" in lines
    assert lines[-1] == "ci: 4 passed, 0 failed, 1 skipped"


def test_ci_summary_passes_a_clean_report(tmp_path: Path) -> None:
    """No failure, no skip, something passed: the summary exits 0."""
    proc = summary(tmp_path, '<testsuite tests="3" failures="0" errors="0" skipped="0"/>')
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1] == "ci: 3 passed, 0 failed, 0 skipped"


def test_ci_summary_prints_what_the_tests_recorded(tmp_path: Path) -> None:
    """A test's recorded figures (the first up's phases) reach the CI log."""
    proc = summary(
        tmp_path,
        '<testsuite tests="1" failures="0" errors="0" skipped="0"><testcase name="test_up">'
        '<properties><property name="first_up" value="verify 300 s"/></properties>'
        "</testcase></testsuite>",
    )
    assert proc.returncode == 0, proc.stdout
    assert "ci: test_up: first_up = verify 300 s" in proc.stdout.splitlines()
