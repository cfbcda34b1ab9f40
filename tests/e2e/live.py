"""Helpers for end-to-end tests: bring a testbed up once per module on the local podman target."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testbeds.targets import podman


def podman_usable() -> str | None:
    """Why the local target cannot run here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    if os.geteuid() != 0:
        return "the local target's base image build (debootstrap) needs root"
    return None


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["testbed", *args], capture_output=True, text=True, check=False, timeout=1800
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"testbed {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc


@dataclass
class LiveTestbed:
    instance: str
    first_up: dict[str, Any]
    first_up_rc: int

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


def bring_up(testbed: str, instance: str) -> Iterator[LiveTestbed]:
    require_podman()
    # A previous run killed half-way may have left this instance behind: converge from there.
    proc = run_cli("up", testbed, "--instance", instance, "--json", check=False)
    try:
        first = json.loads(proc.stdout) if proc.stdout.strip() else {}
        if proc.returncode != 0:
            raise AssertionError(f"first up failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
        yield LiveTestbed(instance, first, proc.returncode)
    finally:
        run_cli("down", instance, check=False)
