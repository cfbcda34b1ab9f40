"""The interface every target implements (the node record it produces is `testbeds.nodes`)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from testbeds import deadlines
from testbeds.errors import PreflightError
from testbeds.model.plan import Plan
from testbeds.model.schema import TestbedDefinition
from testbeds.nodes import ProvisionedNode
from testbeds.state import InstanceRecord, StateDir


@dataclass(frozen=True)
class CheckRun:
    """Which check suites `verify` runs for an instance, and what they are told."""

    suites: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def node_checks(definition: TestbedDefinition) -> CheckRun:
    """Targets that configure nodes run the definition's suites against them."""
    return CheckRun(tuple(definition.checks))


@dataclass(frozen=True)
class NodeStatus:
    name: str
    state: str
    detail: str = ""
    # A node of an elastic group beyond its count: Slurm starts and removes it.
    elastic: bool = False


class Target(Protocol):
    """Operations are idempotent: calling them again converges, never duplicates."""

    name: str
    # False for targets that deploy workloads (Kubernetes) rather than nodes to configure.
    configures_nodes: bool
    provides_shared_filesystems: bool
    # True where the nodes outlive `down` (a site's own hosts): their secrets are kept.
    keeps_hosts: bool
    # True where Slurm's power saving can start and remove nodes of elastic groups.
    starts_elastic_nodes: bool
    hardware_notes: dict[str, str]

    def preflight(self, plan: Plan) -> None:
        """Raise PreflightError before anything is created if the plan cannot be hosted."""

    def checks(self, definition: TestbedDefinition, record: InstanceRecord) -> CheckRun:
        """The suites `verify` runs for an instance on this target, with their environment."""

    def provision(self, plan: Plan, state: StateDir) -> list[ProvisionedNode]:
        """Create or reuse every node of the plan and return how to reach each over SSH."""

    def status(self, instance: str) -> list[NodeStatus]:
        """State of every node the target holds for this instance."""

    def destroy(self, instance: str) -> list[str]:
        """Remove everything of this instance; return what was removed."""

    def leftovers(self, instance: str) -> list[str]:
        """Anything still labelled with this instance (empty after destroy)."""


class NodeTarget:
    """What the targets that create or take nodes and configure them with the roles share:
    the definition's check suites run against those nodes. Each sets its name and says
    where it differs."""

    name: str
    configures_nodes = True
    provides_shared_filesystems = False
    keeps_hosts = False
    starts_elastic_nodes = False
    # Real hardware unless a target says what it emulates: what the roles detect.
    hardware_notes: dict[str, str] = {}  # noqa: RUF012 - read only, replaced by subclasses

    def checks(self, definition: TestbedDefinition, record: InstanceRecord) -> CheckRun:
        return node_checks(definition)


def require_pulumi(target: str) -> None:
    """The cloud targets drive stacks/<target> through the Automation API, which runs the
    Pulumi CLI."""
    if shutil.which("pulumi") is None:
        raise PreflightError(
            f"the {target} target drives stacks/{target} through the Pulumi Automation API, "
            "which needs the Pulumi CLI on PATH; install it, or run `pulumi up` in "
            f"stacks/{target} yourself"
        )


def run_stack_operation(stack: Any, operation: str, on_output: Callable[[str], None]) -> Any:
    """`stack.up()` or `stack.destroy()` with the Pulumi deadline: past it the operation is
    cancelled (Pulumi leaves the stack consistent) and a one-line error says so."""
    limit_s = deadlines.seconds("pulumi")
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(getattr(stack, operation), on_output=on_output)
        try:
            return future.result(timeout=limit_s)
        except FutureTimeout:
            with suppress(Exception):
                stack.cancel()
            raise deadlines.DeadlineExpired(
                deadlines.expired("pulumi", limit_s, f"in `pulumi {operation}`")
            ) from None
