"""The no-op `up`: roles are skipped only when every node recorded the same inputs and every
unit it recorded still runs; any other answer (no record, older inputs, a stopped unit, an
unreachable node) makes the run a full one. The probe and record scripts run for real
against a fake `systemctl`, so what they print is what the decision reads."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbeds import unchanged
from testbeds.model.plan import resolve
from testbeds.nodes import ProvisionedNode
from testbeds.state import StateDir

NODES = [ProvisionedNode(n, "g", ("common",), "192.0.2.1", "") for n in ("a", "b")]
INPUTS = "f" * 64


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str = ""


def fake_systemctl(folder: Path, running: set[str]) -> Path:
    """A `systemctl` that knows `running` (services, one oneshot among them), enough for
    the scripts: list-units, show -p Type, is-active."""
    script = folder / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f"RUNNING='{' '.join(sorted(running))}'\n"
        'case "$1" in\n'
        "  list-units)\n"
        '    case "$*" in *--type=service*)\n'
        '      for u in $RUNNING; do echo "$u loaded active running x"; done;;\n'
        "    esac ;;\n"
        '  show) [ "$5" = apt-daily.service ] && echo oneshot || echo simple ;;\n'
        "  is-active)\n"
        '    shift; [ "$1" = --quiet ] && { shift; quiet=1; }\n'
        "    rc=0; for u in \"$@\"; do\n"
        '      case " $RUNNING " in *" $u "*) [ -z "$quiet" ] && echo active ;;\n'
        '        *) [ -z "$quiet" ] && echo inactive; rc=3 ;; esac\n'
        "    done; exit $rc ;;\n"
        "esac\n"
    )  # fmt: skip
    script.chmod(0o755)
    return folder


@pytest.fixture
def node_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node: the scripts' /var/lib/wp5-testbeds points into tmp_path."""
    root = tmp_path / "node"
    root.mkdir()
    record_dir = str(root / "record")
    monkeypatch.setattr(
        unchanged, "PROBE", unchanged.PROBE.replace(unchanged.RECORD_DIR, record_dir)
    )
    monkeypatch.setattr(
        unchanged, "RECORD", unchanged.RECORD.replace(unchanged.RECORD_DIR, record_dir)
    )
    monkeypatch.setattr(unchanged, "INPUTS_FILE", f"{record_dir}/configured-inputs")
    return root


def shell(root: Path, running: set[str]):  # type: ignore[no-untyped-def]
    bin_dir = fake_systemctl(root, running)

    def run(node: ProvisionedNode, command: str) -> Result:
        done = subprocess.run(
            ["sh", "-c", command],
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run


def test_recorded_inputs_and_running_units_make_a_node_unchanged(node_root: Path) -> None:
    running = {"slurmd.service", "sssd.service", "apt-daily.service", "user@0.service"}
    run = shell(node_root, running)
    assert unchanged.record(NODES[:1], INPUTS, run) == []
    units = (node_root / "record" / "running-units").read_text().split()
    # Oneshots and people's sessions come and go: not recorded.
    assert units == ["slurmd.service", "sssd.service"]
    records = unchanged.probe(NODES[:1], run)
    assert records == [unchanged.NodeRecord("a", INPUTS, True, unchanged.HEALTHY)]
    assert unchanged.unchanged(records, INPUTS) == (True, "unchanged")


def test_a_stopped_unit_other_inputs_or_no_record_mean_a_full_run(node_root: Path) -> None:
    unchanged.record(NODES[:1], INPUTS, shell(node_root, {"slurmd.service", "sssd.service"}))
    killed = unchanged.probe(NODES[:1], shell(node_root, {"sssd.service"}))
    same, why = unchanged.unchanged(killed, INPUTS)
    assert not same and "slurmd.service" in why and why.startswith("a: ")
    healthy = unchanged.probe(NODES[:1], shell(node_root, {"slurmd.service", "sssd.service"}))
    assert unchanged.unchanged(healthy, "0" * 64)[0] is False
    unchanged.forget(NODES[:1], shell(node_root, set()))
    forgotten = unchanged.probe(NODES[:1], shell(node_root, {"slurmd.service", "sssd.service"}))
    assert forgotten[0].inputs == "none"
    assert unchanged.unchanged(forgotten, INPUTS)[0] is False


def test_an_unreachable_node_means_a_full_run() -> None:
    def unreachable(node: ProvisionedNode, command: str) -> Result:
        raise RuntimeError("ssh: connect to host a port 22: No route to host")

    records = unchanged.probe(NODES, unreachable)
    assert [r.healthy for r in records] == [False, False]
    assert unchanged.unchanged(records, INPUTS)[0] is False
    assert unchanged.unchanged([], INPUTS)[0] is False


def test_the_inputs_change_with_the_inventory_and_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    plan = resolve("hpc-access")
    state = StateDir(plan.instance)
    state.inventory_file.parent.mkdir(parents=True)
    state.inventory_file.write_text("all: {}\n")
    state.secrets_dir.mkdir(parents=True)
    first = unchanged.configuration_inputs(plan, state)
    assert first == unchanged.configuration_inputs(plan, state)
    state.inventory_file.write_text("all: {vars: {x: 1}}\n")
    second = unchanged.configuration_inputs(plan, state)
    (state.secrets_dir / "user-researcher-password").write_text("new")
    third = unchanged.configuration_inputs(plan, state)
    assert len({first, second, third}) == 3


def test_the_inputs_change_with_the_code_roles_copy_to_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wp5-hpc-job and the Buildbot master run package files the roles copy: a change to
    one of them is a change of what `up` must configure."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    plan = resolve("hpc-access")
    state = StateDir(plan.instance)
    state.secrets_dir.mkdir(parents=True)
    package = tmp_path / "package"
    (package / "nodeside").mkdir(parents=True)
    (package / "nodeside" / "hpc_job.py").write_text("print(1)\n")
    monkeypatch.setenv("TESTBED_HOME", str(unchanged.paths.PACKAGE_DIR.parent))
    monkeypatch.setattr(unchanged.paths, "PACKAGE_DIR", package)
    first = unchanged.configuration_inputs(plan, state)
    (package / "nodeside" / "hpc_job.py").write_text("print(2)\n")
    assert unchanged.configuration_inputs(plan, state) != first
    # What only the control node runs (the checks, say) is not among them.
    (package / "checks").mkdir()
    second = unchanged.configuration_inputs(plan, state)
    (package / "checks" / "test_x.py").write_text("assert True\n")
    assert unchanged.configuration_inputs(plan, state) == second


def test_an_elastic_node_started_between_two_ups_leaves_the_inputs_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node broker issues an elastic node's host key and certificate when Slurm resumes
    it; the static nodes' configuration does not read them, so the next `up` stays a no-op.
    A static node's new certificate, or a new CA, is still a change."""
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    plan = resolve("hpc-access")
    elastic = plan.elastic_nodes[0].name
    static = next(node.name for node in plan.nodes)
    state = StateDir(plan.instance)
    hosts = state.secrets_dir / "ca" / "hosts"
    hosts.mkdir(parents=True)
    (hosts / f"{static}.crt").write_text("static")
    before = unchanged.configuration_inputs(plan, state)
    (hosts / f"{elastic}.key").write_text("key")
    (hosts / f"{elastic}.crt").write_text("cert")
    assert unchanged.configuration_inputs(plan, state) == before
    # The same name anywhere else in the secrets folder is an input like any other.
    (state.secrets_dir / f"{elastic}.crt").write_text("elsewhere")
    assert unchanged.configuration_inputs(plan, state) != before
    (state.secrets_dir / f"{elastic}.crt").unlink()
    (hosts / f"{static}.crt").write_text("reissued")
    assert unchanged.configuration_inputs(plan, state) != before
