"""`testbed up/down --target kubernetes` with Pulumi's Automation API replaced by a
recording fake: the Pulumi CLI it drives cannot be installed here. What is checked is
what the target sends to the stack and keeps in the state, and that it refuses early."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi.automation as auto
import pytest

from testbeds import deploy
from testbeds.errors import PreflightError
from testbeds.model.plan import resolve
from testbeds.state import StateDir
from testbeds.targets.kubernetes import target as kubernetes


@dataclass
class FakeStack:
    """Records config and calls the way the Automation API's Stack receives them."""

    name: str
    registry: dict[str, FakeStack]
    config: dict[str, Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def set_config(self, key: str, value: Any) -> None:
        self.config[key] = value

    def up(self, on_output: Any) -> Any:
        self.calls.append("up")
        on_output("Resources: 31 created")
        output = auto.OutputValue(
            value=self.config["wp5-testbeds-kubernetes:instance"].value, secret=False
        )
        return auto.UpResult("", "", summary=None, outputs={"namespace": output})  # type: ignore[arg-type]

    def outputs(self) -> dict[str, Any]:
        return {"namespace": auto.OutputValue(value=self.name, secret=False)}

    def destroy(self, on_output: Any) -> Any:
        self.calls.append("destroy")

        class Summary:
            resource_changes = {"delete": 31}

        return type("Result", (), {"summary": Summary()})()

    @property
    def workspace(self) -> Any:
        stack = self

        class Workspace:
            def remove_stack(self, name: str) -> None:
                stack.calls.append(f"remove {name}")
                del stack.registry[name]

        return Workspace()


@pytest.fixture
def stacks(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeStack]:
    created: dict[str, FakeStack] = {}

    def create_or_select_stack(stack_name: str, work_dir: str) -> FakeStack:
        assert Path(work_dir) == kubernetes.stack_dir()
        return created.setdefault(stack_name, FakeStack(stack_name, created))

    def select_stack(stack_name: str, work_dir: str) -> FakeStack:
        if stack_name not in created:
            raise auto.StackNotFoundError(Exception(stack_name))
        return created[stack_name]

    monkeypatch.setattr(auto, "create_or_select_stack", create_or_select_stack)
    monkeypatch.setattr(auto, "select_stack", select_stack)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    return created


def test_up_and_down_drive_the_stack_through_a_mocked_automation_api(
    stacks: dict[str, FakeStack],
) -> None:
    plan = resolve("data-movement", site="partner-a", target="kubernetes", instance="dm-k8s")
    result = deploy.up(plan)
    stack = stacks["dm-k8s"]
    assert {k: v.value for k, v in stack.config.items()} == {
        "wp5-testbeds-kubernetes:testbed": "data-movement",
        "wp5-testbeds-kubernetes:site": "partner-a",
        "wp5-testbeds-kubernetes:instance": "dm-k8s",
        "kubernetes:context": "partner-a-prod",
    }
    assert result.playbook is None  # the target configures no nodes: no playbook ran
    # verify ran the cluster checks, which skip here, saying why (no kubectl or cluster)
    assert result.verify is not None and result.verify.ok
    assert result.verify.tests == result.verify.skipped >= 4
    assert StateDir("dm-k8s").read_record().namespace == "dm-k8s"
    assert deploy.status("dm-k8s")["nodes"] == [
        {"name": "dm-k8s", "state": "deployed", "detail": "namespace", "elastic": False}
    ]
    deploy.down("dm-k8s")
    assert stack.calls == ["up", "destroy", "remove dm-k8s"]
    assert stacks == {}


def test_offloading_passes_the_login_nodes_token_as_a_secret_on_stdin(
    stacks: dict[str, FakeStack],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scratch_home: Path,
) -> None:
    """The interLink token and the hub's OAuth client secret reach `pulumi config set
    --secret` on stdin, never on a command line."""
    oauth = (
        scratch_home / "inventories" / "partner-a" / "secrets" / "jupyterhub-oauth-client-secret"
    )
    oauth.parent.mkdir()
    oauth.write_text("oauth-s3cret\n")
    (scratch_home / "stacks").symlink_to(Path(__file__).resolve().parents[2] / "stacks")
    record = tmp_path / "pulumi-calls"
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "argv: $*" >> {record}\necho "stdin: $(cat)" >> {record}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    token = StateDir("hpc-access").secrets_dir / kubernetes.INTERLINK_TOKEN
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("t0ken-from-the-login-node\n")
    try:
        plan = resolve("hpc-access", site="partner-a", target="kubernetes", instance="hpc-k8s")
        deploy.up(plan, run_verify=False)
    finally:
        token.unlink()
    assert record.read_text().splitlines() == [
        "argv: config set --secret --stack hpc-k8s wp5-testbeds-kubernetes:interlinkToken",
        "stdin: t0ken-from-the-login-node",
        "argv: config set --secret --stack hpc-k8s wp5-testbeds-kubernetes:jupyterhubOAuthSecret",
        "stdin: oauth-s3cret",
    ]
    assert "t0ken" not in str(stacks["hpc-k8s"].config)
    assert "s3cret" not in str(stacks["hpc-k8s"].config)


def test_offloading_without_the_slurm_side_stops_before_pulumi(
    stacks: dict[str, FakeStack], scratch_home: Path
) -> None:
    oauth = (
        scratch_home / "inventories" / "partner-a" / "secrets" / "jupyterhub-oauth-client-secret"
    )
    oauth.parent.mkdir()
    oauth.write_text("oauth-s3cret\n")
    plan = resolve("hpc-access", site="partner-a", target="kubernetes", instance="hpc-k8s-2")
    with pytest.raises(PreflightError, match="bring up hpc-access instance 'hpc-access'"):
        deploy.up(plan)
    assert stacks == {}


def test_without_the_pulumi_cli_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    plan = resolve("pipelines", site="partner-a", target="kubernetes")
    with pytest.raises(PreflightError, match="needs the Pulumi CLI on PATH"):
        deploy.up(plan)
