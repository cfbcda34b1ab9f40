"""The Kubernetes Pulumi program run under Pulumi's mocks (no cluster or Pulumi CLI can run
here), and what it would send to a cluster: the objects it creates directly, its custom
resources, and its Helm releases with exactly the values it passes (secrets as the mocks'
placeholders)."""

from __future__ import annotations

import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from tests.pulumi_mocks import RecordingMocks

PROGRAM = Path(__file__).resolve().parents[1] / "stacks" / "kubernetes" / "__main__.py"
RELEASE = "kubernetes:helm.sh/v3:Release"
CUSTOM = "kubernetes:argoproj.io/v1alpha1:WorkflowTemplate"
TESTBEDS = ("data-movement", "hpc-access", "pipelines")
SITE = "partner-a"


@dataclass(frozen=True)
class Release:
    """One Helm release as the program asks for it."""

    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]


def run_program(testbed: str, site: str = SITE, instance: str | None = None) -> RecordingMocks:
    """The program for a shipped testbed (or a definition file, then naming the instance)."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="wp5-testbeds-kubernetes", stack="unit", preview=False)
    pulumi.runtime.set_all_config(
        {
            "wp5-testbeds-kubernetes:testbed": testbed,
            "wp5-testbeds-kubernetes:site": site,
            "wp5-testbeds-kubernetes:instance": instance or f"{testbed}-k8s",
            "wp5-testbeds-kubernetes:interlinkToken": "token-from-login-node",
            "wp5-testbeds-kubernetes:jupyterhubOAuthSecret": "oauth-secret-from-site-file",
        }
    )

    @pulumi.runtime.test  # type: ignore[misc]
    def run() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    run()
    return mocks


def objects(mocks: RecordingMocks) -> list[dict[str, Any]]:
    """Kubernetes objects of built-in kinds the program creates directly."""
    return [
        state
        for typ, _, state in mocks.resources
        if typ.startswith("kubernetes:") and typ not in (RELEASE, CUSTOM)
    ]


def custom_resources(mocks: RecordingMocks) -> list[dict[str, Any]]:
    return [state for _, state in mocks.of_type(CUSTOM)]


def states(mocks: RecordingMocks, suffix: str) -> list[dict[str, Any]]:
    return [state for _, state in mocks.of_type(suffix)]


def of_kind(mocks: RecordingMocks, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(mocks) if o.get("kind") == kind]


def releases(mocks: RecordingMocks) -> list[Release]:
    return [
        Release(
            name=state["name"],
            chart=state["chart"],
            version=state["version"],
            namespace=state["namespace"],
            values=_whole_numbers(state["values"]),
        )
        for state in states(mocks, RELEASE)
    ]


def _whole_numbers(value: Any) -> Any:
    """Pulumi carries every number as a double; the program passed whole numbers as int
    (a chart's schema tells `integer` from `number`)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value
