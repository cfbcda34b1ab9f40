"""What the local target names after an instance: its containers, network, volumes and
the label that marks everything it made."""

from __future__ import annotations

from testbeds.targets.local import podman


def container_name(instance: str, node: str) -> str:
    return f"{instance}-{node}"


def network_name(instance: str) -> str:
    return f"wp5-{instance}"


def volume_name(instance: str, path: str) -> str:
    return f"wp5-{instance}-{path.strip('/').replace('/', '-')}"


def instance_label(instance: str) -> str:
    return f"{podman.INSTANCE_LABEL}={instance}"
