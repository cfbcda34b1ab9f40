"""The phases of `testbed up|verify|status|down`, each timed, shared by the CLI and the tests."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from testbeds import unchanged
from testbeds.bake import bake
from testbeds.definition_playbook import run_definition_playbook
from testbeds.errors import DeployError, TestbedError
from testbeds.instance import Instance
from testbeds.model.loader import load_definition
from testbeds.model.plan import Plan
from testbeds.nodes import ProvisionedNode
from testbeds.playbook import SITE_PLAYBOOK
from testbeds.progress import say
from testbeds.runner import PlaybookResult
from testbeds.state import StateDir, Timings
from testbeds.targets import get_target
from testbeds.targets.base import CheckRun, NodeStatus
from testbeds.verify import VerifyResult, report_counts, run_checks


@dataclass
class UpResult:
    instance: str
    # None where the target configures no nodes (it deploys workloads).
    playbook: PlaybookResult | None
    verify: VerifyResult | None
    timings: Timings
    nodes: list[ProvisionedNode] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "ansible": None
            if self.playbook is None
            else {
                "status": self.playbook.status,
                "rc": self.playbook.rc,
                "changed": self.playbook.changed_total,
                "changed_per_node": self.playbook.changed,
                "artifacts": self.playbook.artifacts,
            },
            "verify": None if self.verify is None else verify_dict(self.verify),
            "timings_s": self.timings.phases,
            "nodes": {n.name: n.address for n in self.nodes},
        }


def verify_dict(result: VerifyResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "tests": result.tests,
        "failures": result.failures,
        "errors": result.errors,
        "skipped": result.skipped,
        "report": str(result.report),
        "measurements": [
            {"check": m.check, "name": m.name, "value": m.value} for m in result.measurements
        ],
    }


def up(plan: Plan, verbose: bool = False, run_verify: bool = True, full: bool = False) -> UpResult:
    timings = Timings()
    instance = Instance.of(plan)
    with timings.phase("preflight"):
        instance.target.preflight(plan)
    if instance.state.exists():
        previous = instance.state.read_record()
        if previous.testbed != plan.name:
            raise TestbedError(
                f"instance {plan.instance!r} already holds testbed {previous.testbed!r}; "
                "bring it down first or choose --instance"
            )
    instance.write_record()
    if instance.target.configures_nodes:
        say(f"provisioning {len(plan.nodes)} node(s) of {plan.name} on target {plan.target}")
    else:
        say(f"deploying {plan.name}'s workloads on target {plan.target}")
    with ThreadPoolExecutor(max_workers=1) as beside:
        # Elastic nodes start from their group's baked image: made now if missing, beside
        # the static nodes' work, ready by the checks.
        images = beside.submit(_bake_elastic_groups, plan, verbose)
        with timings.phase("provision"):
            instance.nodes = instance.target.provision(plan, instance.state)
        if not instance.target.configures_nodes:
            checked = _verify_phase(instance, timings, run_verify)
            instance.state.write_timings("up", timings, {})
            return UpResult(plan.instance, None, checked, timings)
        result = configure(instance, timings, verbose, run_verify, full, before_checks=images)
    return result


def _bake_elastic_groups(plan: Plan, verbose: bool) -> None:
    """The baked image of every elastic group that lacks one (local target)."""
    groups = frozenset(n.group for n in plan.elastic_nodes)
    if not groups or plan.target != "local":
        return
    bake(plan, verbose, command=f"testbed up {plan.instance} (elastic images)", groups=groups)


def configure(
    instance: Instance,
    timings: Timings | None = None,
    verbose: bool = False,
    run_verify: bool = True,
    full: bool = False,
    before_checks: Future[None] | None = None,
) -> UpResult:
    """Render the inventory for the instance's provisioned nodes, run the playbook (unless
    nothing changed since the last successful run and every node is healthy, see
    `unchanged`; `full` runs it anyway), then the checks.

    Every target ends here, whether `testbed up` or a Pulumi program provisioned the nodes."""
    timings = timings or Timings()
    plan, state, nodes = instance.plan, instance.state, instance.nodes
    with timings.phase("inventory"):
        instance.write_description()
        instance.write_inventory()
    with timings.phase("configure"):
        if full:
            same, why = False, "--full"
        else:
            inputs = unchanged.configuration_inputs(plan, state)
            same, why = unchanged.unchanged(unchanged.probe(nodes), inputs)
        if same:
            say(
                "nothing changed since the last successful up and every unit it left running "
                "still runs: configuration skipped (`up --full` runs every role)"
            )
            result = PlaybookResult("unchanged", 0, {}, [])
        else:
            say(f"configuring with {SITE_PLAYBOOK.name} ({why})")
            unchanged.forget(nodes)
            result = run_definition_playbook(instance, verbose, full=full)
            if result.ok:
                # Read again: the run may have made secrets (generated on first use).
                missed = unchanged.record(nodes, unchanged.configuration_inputs(plan, state))
                if missed:
                    say(f"could not record the configuration on {', '.join(missed)}")
    timings.roles = result.role_seconds
    timings.role_nodes = result.roles
    timings.plays = result.plays
    say(
        f"ansible: {result.status}, changed={result.changed_total} "
        f"({', '.join(f'{h}={n}' for h, n in sorted(result.changed.items()))})"
    )
    if not result.ok:
        state.write_timings("up", timings, {"ansible_status": result.status})
        details = "\n  ".join(result.failures) or f"see {result.artifacts}"
        raise DeployError(f"configuring {plan.instance} failed:\n  {details}")
    if before_checks is not None:
        with timings.phase("elastic images"):
            before_checks.result()
    checked = _verify_phase(instance, timings, run_verify)
    state.write_timings(
        "up",
        timings,
        {
            "ansible_changed": result.changed_total,
            "verify": None if checked is None else verify_dict(checked),
        },
    )
    return UpResult(plan.instance, result, checked, timings, nodes)


def _verify_phase(instance: Instance, timings: Timings, run_verify: bool) -> VerifyResult | None:
    """The checks as the last, timed phase of `up` (None when skipped), from the plan in hand."""
    if not run_verify:
        return None
    with timings.phase("verify"):
        return _run(instance.name, instance.checks(), instance.state, testbed=instance.plan.name)


def require_state(instance: str) -> StateDir:
    state = StateDir(instance)
    if not state.exists():
        raise TestbedError(f"no testbed instance {instance!r} is up (no state in {state.path})")
    return state


def verify(instance: str, extra_args: list[str] | None = None, quiet: bool = False) -> VerifyResult:
    """`testbed verify`: the checks of an instance that is up, from its record (the one
    place a command starts from the state folder instead of a plan)."""
    state = require_state(instance)
    record = state.read_record()
    run = get_target(record.target).checks(load_definition(record.definition), record)
    return _run(instance, run, state, extra_args, quiet, record.testbed)


def _run(
    instance: str,
    run: CheckRun,
    state: StateDir,
    extra_args: list[str] | None = None,
    quiet: bool = False,
    testbed: str | None = None,
) -> VerifyResult:
    say(f"running checks {', '.join(run.suites)} against {instance}")
    result = run_checks(
        list(run.suites),
        state.nodes_file,
        state.report_file,
        extra_args,
        quiet=quiet,
        env=run.env,
        testbed=testbed,
    )
    say(
        f"checks: {result.tests} run, {result.failures} failed, {result.errors} errors, "
        f"{result.skipped} skipped; report {result.report}"
    )
    for measured in result.measurements:
        say(f"measured by {measured.check}: {measured.name} = {measured.value}")
    return result


def status(instance: str) -> dict[str, Any]:
    state = StateDir(instance)
    meta: dict[str, Any] = (
        asdict(state.read_record()) if state.exists() else {"instance": instance, "target": "local"}
    )
    rows: list[NodeStatus] = get_target(meta["target"]).status(instance)
    report = None
    if state.report_file.is_file():
        tests, failures, errors, skipped = report_counts(state.report_file)
        report = {"tests": tests, "failures": failures, "errors": errors, "skipped": skipped}
    return {
        **meta,
        "nodes": [r.__dict__ for r in rows],
        "last_verify": report,
        # Elastic nodes come and go with the jobs: the static ones say whether it is up.
        "up": any(not r.elastic for r in rows)
        and all(r.state == "running" for r in rows if not r.elastic),
    }


def down(instance: str) -> dict[str, Any]:
    """Remove what the instance's target made for it. An instance with no state has nothing
    this tool made, so nothing is removed (`removed` is None)."""
    timings = Timings()
    state = StateDir(instance)
    if not state.exists():
        return {"instance": instance, "removed": None, "secrets_kept": None, "timings_s": {}}
    target = get_target(state.read_record().target)
    with timings.phase("destroy"):
        removed = target.destroy(instance)
    left = target.leftovers(instance)
    if left:
        raise DeployError(f"down left behind: {', '.join(left)}")
    kept = None
    if target.keeps_hosts:
        # The site's hosts keep using the CA, munge key and service passwords: never
        # delete the only copy.
        kept = state.back_up_secrets()
    state.remove()
    return {
        "instance": instance,
        "removed": removed,
        "secrets_kept": None if kept is None else str(kept),
        "timings_s": timings.phases,
    }
