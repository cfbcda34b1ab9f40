"""`testbed bake` on the local target, for real, with the smallest testbed: the bake builds
the group's image once and leaves no instance behind; `up` starts the nodes from it, runs
the roles' steps that make the instance (their install steps are in the image) and
converges, and the checks pass."""

from __future__ import annotations

import json

import pytest

from testbeds.loader import load_site
from testbeds.targets import podman
from testbeds.targets.image import ensure_base_image
from tests.conftest import REPO
from tests.e2e.live import require_podman, run_cli

pytestmark = pytest.mark.e2e
SMOKE = str(REPO / "tests" / "fixtures" / "smoke.yaml")
INSTANCE = "e2e-bake"


def podman_base_image() -> str:
    site = load_site("local").local
    assert site is not None
    return ensure_base_image(site.debian_mirror, site.debian_suite, print)


def host_keys(container: str) -> str:
    return podman.exec_(container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout


def test_bake_then_up_from_the_baked_image() -> None:
    require_podman()
    # A user's own instance named like the old builder: the bake must leave it alone.
    bystander = "bake-smoke-node"
    podman.run(
        "run",
        "--detach",
        "--name",
        bystander,
        "--label",
        f"{podman.INSTANCE_LABEL}=bake-smoke",
        *podman.detect_runtime_options().args(),
        podman_base_image(),
        "sleep",
        "600",
    )
    try:
        baked = json.loads(run_cli("bake", SMOKE, "--instance", INSTANCE, "--json").stdout)
        assert podman.container_by_name(bystander)["State"] == "running"  # type: ignore[index]
    finally:
        podman.run("rm", "--force", bystander, check=False)
    image = baked["node"]
    try:
        assert podman.image_exists(image)
        assert podman.containers(f"{podman.INSTANCE_LABEL}=bake.smoke") == []
        # The image holds no node identity: no host keys, no machine id, no random seed.
        inside = podman.run(
            "run",
            "--rm",
            *podman.detect_runtime_options().args(),
            image,
            "sh",
            "-c",
            "ls /etc/ssh/ssh_host_* 2>/dev/null; cat /etc/machine-id; "
            "ls /var/lib/systemd/random-seed 2>/dev/null; true",
        ).stdout
        assert inside.strip() == "", inside
        again = run_cli("bake", SMOKE, "--instance", INSTANCE)
        assert "has a baked image already" in again.stderr

        up = run_cli("up", SMOKE, "--instance", INSTANCE, "--json")
        assert "starting from baked images: node" in up.stderr
        # Only the steps that make the instance run: the install steps are in the image.
        assert "every node runs its group's baked image: skipping" in up.stderr
        result = json.loads(up.stdout)
        assert result["verify"]["ok"], result["verify"]
        nodes = podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}")
        assert {c["Image"] for c in nodes} == {image}, [c["Image"] for c in nodes]
        # Two nodes from one image: each has host keys of its own.
        first, second = (c["Names"][0] for c in nodes)
        assert host_keys(first) and host_keys(first) != host_keys(second)
        again_up = json.loads(
            run_cli("up", SMOKE, "--instance", INSTANCE, "--json", "--no-verify", "--full").stdout
        )
        assert again_up["ansible"]["changed"] == 0
    finally:
        run_cli("down", INSTANCE, check=False)
        podman.run("rmi", "--force", image, check=False)
    assert podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}") == []
