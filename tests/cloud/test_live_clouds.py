"""The cloud targets for real: the smallest testbed brought up, checked and taken down on a
real OpenStack cloud or Kubernetes cluster through the Pulumi CLI.

These need what CI cannot have (credentials, a cloud, the Pulumi CLI), so they are marked
`needs(...)` and deselected, with the reason in the summary, wherever that is missing.
Name the site profile to use with TESTBED_CLOUD_SITE (default: partner-a)."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.conftest import REPO
from tests.e2e.live import run_cli

SMOKE = str(REPO / "tests" / "fixtures" / "smoke.yaml")


def site() -> str:
    return os.environ.get("TESTBED_CLOUD_SITE", "partner-a")


def up_verify_down(target: str, definition: str) -> None:
    instance = f"ci-{target[:4]}-{uuid.uuid4().hex[:6]}"
    try:
        up = run_cli(
            "up",
            definition,
            "--target",
            target,
            "--site",
            site(),
            "--instance",
            instance,
            "--json",
        )
        assert json.loads(up.stdout)["verify"]["ok"]
        status = run_cli("status", instance, "--json")
        assert json.loads(status.stdout)["up"]
    finally:
        down = run_cli("down", instance, check=False)
    assert down.returncode == 0, down.stderr[-3000:]


@pytest.mark.needs("openstack_cloud")
def test_smallest_testbed_on_openstack() -> None:
    """up on a real cloud gives checked nodes; down removes the stack."""
    up_verify_down("openstack", SMOKE)


@pytest.mark.needs("kubernetes_cluster")
def test_data_movement_on_kubernetes() -> None:
    """up on a real cluster deploys the workloads and the cluster checks pass; down removes
    the namespace."""
    up_verify_down("kubernetes", "data-movement")
