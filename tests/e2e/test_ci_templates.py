"""The CI templates under docs/ci/ run for real, command by command, in the order the
CI service would run them (the install steps aside: this machine has what they install),
against the smallest testbed. So the templates cannot drift from the CLI."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from testbeds.targets.local import podman
from tests.conftest import REPO
from tests.e2e.live import require_podman

pytestmark = pytest.mark.e2e
TEMPLATES = REPO / "docs" / "ci"
SMOKE = REPO / "tests" / "fixtures" / "smoke.yaml"


def gitlab_commands() -> list[str]:
    job = yaml.safe_load((TEMPLATES / "gitlab-ci.yml").read_text())["testbed"]
    return [*job["script"], *job["after_script"]]


def github_commands() -> list[str]:
    workflow = yaml.safe_load((TEMPLATES / "github" / "testbed.yml").read_text())
    steps = workflow["jobs"]["testbed"]["steps"]
    return [step["run"] for step in steps if "run" in step and step.get("name") != "Install"]


def test_teardown_always_runs() -> None:
    """Both templates take the testbed down whatever happened before."""
    job = yaml.safe_load((TEMPLATES / "gitlab-ci.yml").read_text())["testbed"]
    assert any(c.startswith("testbed down") for c in job["after_script"])
    assert job["artifacts"]["when"] == "always"
    workflow = yaml.safe_load((TEMPLATES / "github" / "testbed.yml").read_text())
    down = [s for s in workflow["jobs"]["testbed"]["steps"] if "testbed down" in s.get("run", "")]
    assert down and down[0]["if"] == "always()"


def test_github_workflow_never_runs_fork_code_on_the_root_runner() -> None:
    """The self-hosted (root) runner runs pushes and same-repository pull requests only:
    no pull_request_target, read-only token, a fork's pull request skipped by the job's if."""
    text = (TEMPLATES / "github" / "testbed.yml").read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request_target" not in triggers and "workflow_run" not in triggers
    assert workflow["permissions"] == {"contents": "read"}
    job = workflow["jobs"]["testbed"]
    assert "self-hosted" in job["runs-on"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert job["steps"][0]["with"]["persist-credentials"] is False


@pytest.mark.parametrize(
    ("template", "commands"),
    [("gitlab", gitlab_commands()), ("github", github_commands())],
)
def test_template_commands_run_in_order(template: str, commands: list[str], tmp_path: Path) -> None:
    """up, verify, keep the report, down: each command succeeds; the JUnit report has the
    checks; nothing with the instance's label is left."""
    require_podman()
    instance = f"ci-template-{template}"
    env = {
        **os.environ,
        "TESTBED": str(SMOKE),
        "TESTBED_INSTANCE": instance,
        "TESTBED_STATE_DIR": str(tmp_path / "state"),
        "CI_PROJECT_DIR": str(tmp_path),
    }
    try:
        for command in commands:
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            assert proc.returncode == 0, f"{command!r} failed:\n{proc.stderr[-3000:]}"
        report = ET.parse(tmp_path / "testbed-report.xml").getroot()
        cases = list(report.iter("testcase"))
        assert len(cases) >= 6
        assert not [
            c for c in cases if c.find("failure") is not None or c.find("error") is not None
        ]
        assert podman.containers(f"{podman.INSTANCE_LABEL}={instance}") == []
    finally:
        subprocess.run(["testbed", "down", instance], env=env, capture_output=True, check=False)
