"""A thin, typed layer over the podman CLI (JSON output where podman offers it)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from testbeds.errors import DeployError, PreflightError

LABEL_PREFIX = "wp5-testbeds"
INSTANCE_LABEL = f"{LABEL_PREFIX}.instance"


class PodmanError(DeployError):
    """A podman command failed; reported as one line, like every other user-facing error."""


def podman_binary() -> str:
    binary = shutil.which("podman")
    if binary is None:
        raise PreflightError(
            "podman is not installed; the local target needs it "
            "(Debian: apt-get install podman runc iptables debootstrap)"
        )
    return binary


def check_network_backend() -> None:
    """netavark (podman's network backend here) sets up container networks with iptables;
    without it every `podman run` on a network fails with a bare "No such file"."""
    backend = run("info", "--format", "{{.Host.NetworkBackend}}", check=False).stdout.strip()
    if backend == "netavark" and shutil.which("iptables") is None:
        raise PreflightError(
            "podman's network backend netavark needs iptables, which is not installed "
            "(Debian: apt-get install iptables)"
        )


def run(
    *args: str, check: bool = True, input_bytes: bytes | None = None, timeout: float | None = 300
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            [podman_binary(), *args],
            input=input_bytes.decode() if input_bytes is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PodmanError(
            f"podman {' '.join(args[:3])} ... did not finish in {timeout:.0f}s; "
            "run the same command again to converge"
        ) from None
    if check and proc.returncode != 0:
        raise PodmanError(f"podman {' '.join(args[:3])} ... failed: {proc.stderr.strip()}")
    return proc


def run_json(*args: str) -> Any:
    out = run(*args).stdout.strip()
    return json.loads(out) if out else []


@dataclass(frozen=True)
class RuntimeOptions:
    """Options this host needs for systemd containers, detected rather than hard-coded."""

    runtime: str | None
    nofile: int
    nproc: int

    def args(self) -> list[str]:
        args = [
            f"--ulimit=nofile={self.nofile}:{self.nofile}",
            f"--ulimit=nproc={self.nproc}:{self.nproc}",
        ]
        if self.runtime:
            args.insert(0, f"--runtime={self.runtime}")
        return args


def _limit(kind: int, cap: int) -> int:
    # podman asks for more than the hard limit by default, which fails without
    # CAP_SYS_RESOURCE; ask for what this process may already use instead.
    soft, hard = resource.getrlimit(kind)
    usable = [v for v in (soft, hard) if v != resource.RLIM_INFINITY]
    return min([cap, *usable])


def detect_runtime_options() -> RuntimeOptions:
    # crun fails on hosts with hybrid cgroups ("cgroups in hybrid mode not supported");
    # runc handles both layouts, so prefer it when installed.
    runtime = "runc" if shutil.which("runc") else None
    return RuntimeOptions(
        runtime=runtime,
        nofile=_limit(resource.RLIMIT_NOFILE, 65536),
        nproc=_limit(resource.RLIMIT_NPROC, 32768),
    )


def containers(label: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = run_json(
        "ps", "-a", "--filter", f"label={label}", "--format", "json"
    )
    return data


def container_by_name(name: str) -> dict[str, Any] | None:
    for item in run_json("ps", "-a", "--filter", f"name=^{name}$", "--format", "json"):
        if name in item.get("Names", []):
            return dict(item)
    return None


def remove_storage_leftover(name: str) -> bool:
    """Remove a container that exists only in podman's storage under this name: what an
    interrupted `podman run` leaves, which blocks the name yet shows in no listing."""
    for item in run_json(
        "ps", "-a", "--external", "--filter", f"name=^{name}$", "--format", "json"
    ):
        external = "storage" in (str(item.get("State", "")) + str(item.get("Status", ""))).lower()
        if name in item.get("Names", []) and external:
            run("rm", "--storage", item["Id"])
            return True
    return False


def networks(label: str) -> list[str]:
    out = run("network", "ls", "--filter", f"label={label}", "--format", "{{.Name}}").stdout
    return [line for line in out.splitlines() if line]


def network_details() -> list[dict[str, Any]]:
    """Every podman network with its bridge and subnets (`podman network ls` as JSON)."""
    return list(json.loads(run("network", "ls", "--format", "json").stdout or "[]"))


def network_exists(name: str) -> bool:
    return run("network", "exists", name, check=False).returncode == 0


def volumes(label: str) -> list[str]:
    out = run("volume", "ls", "--filter", f"label={label}", "--format", "{{.Name}}").stdout
    return [line for line in out.splitlines() if line]


def image_tags(repository: str, label: str) -> list[str]:
    """The tags (repository:tag) of images of one repository that carry the label."""
    out = run(
        "images",
        "--filter",
        f"reference={repository}",
        "--filter",
        f"label={label}",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ).stdout
    return [line for line in out.splitlines() if line.startswith(f"{repository}:")]


def image_exists(ref: str) -> bool:
    return run("image", "exists", ref, check=False).returncode == 0


def inspect(name: str) -> dict[str, Any]:
    data = run_json("inspect", "--type", "container", name)
    return dict(data[0])


def exec_(name: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run("exec", name, *command, check=False, timeout=timeout)
