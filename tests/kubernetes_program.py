"""The Kubernetes Pulumi program run under Pulumi's mocks (no cluster or Pulumi CLI can run
here), and what it would send to a cluster: the objects it creates directly, its custom
resources, and its Helm releases with exactly the values it passes (secrets as the mocks'
placeholders)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi

from testbeds.targets.cloud.offline import RecordingMocks
from testbeds.targets.kubernetes.program.manifests import CUSTOM, RELEASE, Release, declared

__all__ = ["CUSTOM", "RELEASE", "Release", "custom_resources", "objects", "of_kind", "releases"]

PROGRAM = Path(__file__).resolve().parents[1] / "stacks" / "kubernetes" / "__main__.py"
TESTBEDS = ("data-movement", "hpc-access", "pipelines")
SITE = "partner-a"


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
    return declared(mocks).objects


def custom_resources(mocks: RecordingMocks) -> list[dict[str, Any]]:
    return declared(mocks).custom


def states(mocks: RecordingMocks, suffix: str) -> list[dict[str, Any]]:
    return [state for _, state in mocks.of_type(suffix)]


def of_kind(mocks: RecordingMocks, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(mocks) if o.get("kind") == kind]


def releases(mocks: RecordingMocks) -> list[Release]:
    return declared(mocks).releases
