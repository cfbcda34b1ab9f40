"""`testbed bake` on the local target, for real, with the smallest testbed: the bake builds
the group's image once and leaves no instance behind; `up` starts the nodes from it, runs
the roles' steps that make the instance (their install steps are in the image) and
converges, and the checks pass. Baked images travel: pushed to a registry (Debian's
distribution server, on loopback), removed here, and pulled again by `up --baked-from`."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbeds.model.loader import load_site
from testbeds.targets.local import podman
from testbeds.targets.local.image import ensure_base_image
from tests.conftest import REPO
from tests.e2e.live import require_podman, run_cli

pytestmark = pytest.mark.e2e
SMOKE = str(REPO / "tests" / "fixtures" / "smoke.yaml")
INSTANCE = "e2e-bake"


def podman_base_image() -> str:
    site = load_site("local").local
    assert site is not None
    return ensure_base_image(site.debian_mirror, site.debian_suite, print)


INSTALLED_REGISTRY = Path("/usr/bin/docker-registry")


def registry_binary(folder: Path) -> Path:
    """Debian's distribution server: the installed one, or the binary taken out of its
    package (downloaded, never installed: the package would start a registry on every
    interface of the machine)."""
    if INSTALLED_REGISTRY.exists():
        return INSTALLED_REGISTRY
    subprocess.run(
        ["apt-get", "download", "-q", "docker-registry"], cwd=folder, check=True, timeout=600
    )
    package = next(folder.glob("docker-registry_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(package), str(folder / "deb")], check=True)
    return folder / "deb" / "usr" / "bin" / "docker-registry"


@contextlib.contextmanager
def loopback_registry(folder: Path) -> Iterator[str]:
    """An OCI registry on a free loopback port, storing in `folder`, for this test only."""
    binary = registry_binary(folder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = folder / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'store'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    server = subprocess.Popen(
        [str(binary), "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None and time.monotonic() < deadline, "no registry"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}/wp5"
    finally:
        server.terminate()
        server.wait(timeout=30)


def host_keys(container: str) -> str:
    return podman.exec_(container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout


@pytest.fixture
def images_made(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Make images named as bakes name theirs, from the base image with labels and nothing
    else; all removed after the test."""
    made: list[str] = []

    def image_with_labels(ref: str, *labels: str) -> str:
        (tmp_path / "Containerfile").write_text(f"FROM {podman_base_image()}\n")
        label_args = [arg for label in labels for arg in ("--label", label)]
        made.append(ref)
        podman.run("build", "--quiet", *label_args, "--tag", ref, str(tmp_path), timeout=120)
        return ref

    yield image_with_labels
    for ref in made:
        podman.run("rmi", "--force", ref, check=False)


def test_bake_then_up_from_the_baked_image(tmp_path: Path, images_made: Callable[..., str]) -> None:
    require_podman()
    # The group's image of an earlier key goes when the new one is baked; an image of the
    # same name not labelled as this group's bake (made by hand, say) stays.
    older = "localhost/wp5-testbeds-baked-smoke-node:0000000000000000"
    by_hand = "localhost/wp5-testbeds-baked-smoke-node:by-hand"
    images_made(older, f"{podman.LABEL_PREFIX}.baked-group=smoke/node")
    images_made(by_hand, f"{podman.LABEL_PREFIX}.image=baked")
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
        assert not podman.image_exists(older)
        assert podman.image_exists(by_hand)
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

        # Baked images travel: pushed, gone from here, pulled by `up` by the same tag.
        with loopback_registry(tmp_path) as registry:
            pushed = json.loads(
                run_cli("bake", SMOKE, "--instance", INSTANCE, "--push", registry, "--json").stdout
            )
            assert pushed["pushed"] == {"node": f"{registry}/{image.removeprefix('localhost/')}"}
            run_cli("down", INSTANCE)
            podman.run("rmi", "--force", image)
            elsewhere = run_cli(
                "up", SMOKE, "--instance", INSTANCE, "--baked-from", f"{registry}-empty",
                "--no-verify", check=False,
            )  # fmt: skip
            assert elsewhere.returncode == 2, elsewhere.stderr
            assert "bake and push it first" in elsewhere.stderr, elsewhere.stderr
            assert podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}") == []
            # The checks ran on this image above: configuring from it is what is new here.
            pulled = run_cli(
                "up", SMOKE, "--instance", INSTANCE, "--baked-from", registry, "--no-verify"
            )
        assert f"pulling {registry}/" in pulled.stderr
        assert "every node runs its group's baked image: skipping" in pulled.stderr
        assert {c["Image"] for c in podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}")} == {
            image
        }
    finally:
        run_cli("down", INSTANCE, check=False)
        podman.run("rmi", "--force", image, check=False)
    assert podman.containers(f"{podman.INSTANCE_LABEL}={INSTANCE}") == []
