"""Helpers for end-to-end tests: bring a testbed up once per module on the local podman target."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testbeds.targets.local import podman


def podman_usable() -> str | None:
    """Why the local target cannot run here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    if os.geteuid() != 0:
        return "the local target's base image build (debootstrap) needs root"
    return None


def run_cli(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["testbed", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"testbed {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc


# Stands for what a caller's environment holds and must never be stored: a cloud
# password, a Pulumi passphrase, a CI token. The first `up` of every live testbed runs
# with it set.
LEAK_MARKER = f"wp5-leak-marker-{uuid.uuid4().hex}"
SECRET_ENVIRONMENT = {
    "OS_PASSWORD": LEAK_MARKER,
    "PULUMI_CONFIG_PASSPHRASE": LEAK_MARKER,
    "CI_JOB_TOKEN": LEAK_MARKER,
}


@dataclass
class LiveTestbed:
    instance: str
    first_up: dict[str, Any]
    first_up_rc: int
    # What `testbed bake` did before the first up (None: the up was not from baked images).
    bake: BakeRun | None = None

    def state_problems(self) -> list[str]:
        """What in the instance's state is readable by others or holds the caller's
        environment: folders not 0700, secrets not 0600, any file with the marker."""
        from testbeds.state import StateDir

        state = StateDir(self.instance)
        problems = []
        for path in [state.root, state.path, *state.path.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                continue
            if path.is_dir() and path in (state.root, state.path) and mode != 0o700:
                problems.append(f"{path}: folder mode {mode:o}")
            elif path.is_file():
                public = path.suffix == ".pub" or path.read_bytes().startswith(b"-----BEGIN CERT")
                if state.secrets_dir in path.parents and not public and mode & 0o077:
                    problems.append(f"{path}: secret mode {mode:o}")
                if LEAK_MARKER.encode() in path.read_bytes():
                    problems.append(f"{path}: holds the caller's environment")
        return problems

    def leftovers(self) -> list[str]:
        label = f"{podman.INSTANCE_LABEL}={self.instance}"
        return (
            [c["Names"][0] for c in podman.containers(label)]
            + podman.networks(label)
            + podman.volumes(label)
        )


def require_podman() -> None:
    """Skip the test when the local target cannot run here, or fail it when CI requires
    end-to-end tests (TESTBED_REQUIRE_E2E)."""
    reason = podman_usable()
    if reason:
        if os.environ.get("TESTBED_REQUIRE_E2E"):
            pytest.fail(f"end-to-end tests required but cannot run: {reason}")
        pytest.skip(reason)


@dataclass(frozen=True)
class BakeRun:
    seconds: float
    # False where every group's image of the current key was there already.
    built: bool

    def __str__(self) -> str:
        made = "images built" if self.built else "every image there already (same key)"
        return f"bake {self.seconds:.0f} s, {made}"


def bake_images(testbed: str) -> BakeRun:
    """`testbed bake`: the testbed's group images, built where missing."""
    started = time.monotonic()
    proc = run_cli("bake", testbed)
    return BakeRun(time.monotonic() - started, "has a baked image already" not in proc.stderr)


def bring_up(testbed: str, instance: str, baked: bool = False) -> Iterator[LiveTestbed]:
    """The instance up once (from baked images if `baked`: the install steps were proved
    by the bake that made them), and down afterwards whatever happened."""
    require_podman()
    bake = bake_images(testbed) if baked else None
    # A previous run killed half-way may have left this instance behind: converge from there.
    proc = run_cli(
        "up", testbed, "--instance", instance, "--json", check=False, env=SECRET_ENVIRONMENT
    )
    try:
        first = json.loads(proc.stdout) if proc.stdout.strip() else {}
        if proc.returncode != 0:
            raise AssertionError(f"first up failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
        yield LiveTestbed(instance, first, proc.returncode, bake)
    finally:
        run_cli("down", instance, check=False)
