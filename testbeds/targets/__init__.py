"""Targets turn a plan into reachable nodes; each one is chosen by name from this registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from testbeds.errors import PreflightError

if TYPE_CHECKING:  # each target's module loads only when it is chosen
    from testbeds.targets.base import Target


def _local() -> Target:
    from testbeds.targets.local.target import LocalTarget

    return LocalTarget()


def _openstack() -> Target:
    from testbeds.targets.openstack.target import OpenStackTarget

    return OpenStackTarget()


def _kubernetes() -> Target:
    from testbeds.targets.kubernetes.target import KubernetesTarget

    return KubernetesTarget()


def _static() -> Target:
    from testbeds.targets.static.target import StaticTarget

    return StaticTarget()


TARGETS: dict[str, Callable[[], Target]] = {
    "local": _local,
    "openstack": _openstack,
    "kubernetes": _kubernetes,
    "static": _static,
}


def get_target(name: str) -> Target:
    try:
        factory = TARGETS[name]
    except KeyError:
        known = ", ".join(sorted(TARGETS))
        raise PreflightError(
            f"target {name!r} is not available here (available: {known})"
        ) from None
    return factory()
