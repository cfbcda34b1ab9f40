"""`testbed bake` on the local target, for real, with the smallest testbed: the bake builds
the group's image once and leaves no instance behind; `up` starts the nodes from it, the
roles still run and converge, and the checks pass."""

from __future__ import annotations

import json

import pytest

from testbeds.targets import podman
from tests.conftest import REPO
from tests.e2e.live import require_podman, run_cli

pytestmark = pytest.mark.e2e
SMOKE = str(REPO / "tests" / "fixtures" / "smoke.yaml")
INSTANCE = "e2e-bake"


def test_bake_then_up_from_the_baked_image() -> None:
    require_podman()
    baked = json.loads(run_cli("bake", SMOKE, "--instance", INSTANCE, "--json").stdout)
    image = baked["node"]
    try:
        assert podman.image_exists(image)
        assert podman.containers(f"{podman.INSTANCE_LABEL}=bake-smoke") == []
        again = run_cli("bake", SMOKE, "--instance", INSTANCE)
        assert "has a baked image already" in again.stderr

        up = run_cli("up", SMOKE, "--instance", INSTANCE, "--json")
        assert "starting from baked images: node" in up.stderr
        result = json.loads(up.stdout)
        assert result["verify"]["ok"], result["verify"]
        nodes = podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}")
        assert {c["Image"] for c in nodes} == {image}, [c["Image"] for c in nodes]
        again_up = json.loads(
            run_cli("up", SMOKE, "--instance", INSTANCE, "--json", "--no-verify").stdout
        )
        assert again_up["ansible"]["changed"] == 0
    finally:
        run_cli("down", INSTANCE, check=False)
        podman.run("rmi", "--force", image, check=False)
    assert podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}") == []
