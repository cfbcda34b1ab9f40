"""The life every testbed's end-to-end test follows on the local podman target, once:
up (with its checks) -> state private -> idempotent up (which, where the module hands it a
fault, heals that and changes nothing else) -> the module's own faults -> down leaves
nothing. A module subclasses Lifecycle, names its testbed and instance and the checks its
first verify must include, and adds its faults as methods; tests/e2e/conftest.py runs
`test_down_leaves_nothing` after them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from testbeds.state import StateDir
from tests.e2e.elastic_faults import broker_processes
from tests.e2e.live import LiveTestbed, bring_up, run_cli

# How many checks each testbed's verify runs on the local target: all must run and pass.
CHECKS = {"research-infrastructure": 338}


class Lifecycle:
    testbed: ClassVar[str]
    instance: ClassVar[str]
    # Checks (names without parameters) the first verify must have run.
    cases: ClassVar[frozenset[str]] = frozenset()
    # Bake first (images kept between runs while the roles are the same) and come up from
    # the baked images; the second `up --full` then runs the install steps too.
    baked: ClassVar[bool] = False

    @pytest.fixture(scope="class")
    def live(self) -> Iterator[LiveTestbed]:
        yield from bring_up(self.testbed, self.instance, baked=self.baked)

    def test_up_configures_and_passes_its_checks(
        self, live: LiveTestbed, record_property: Callable[[str, object], None]
    ) -> None:
        """The first up changes the nodes, and its verify phase runs every check, passing."""
        phases = "  ".join(f"{k} {v:.0f} s" for k, v in live.first_up["timings_s"].items())
        record_property("first_up", f"{live.bake}; up: {phases}" if live.bake else phases)
        assert live.first_up["ansible"]["changed"] > 0
        verify = live.first_up["verify"]
        assert verify["ok"], verify
        # A skipped check proves nothing: every check must have run.
        assert (verify["tests"], verify["failures"], verify["errors"], verify["skipped"]) == (
            CHECKS[self.testbed],
            0,
            0,
            0,
        )
        report = ET.parse(verify["report"]).getroot()
        ran = {str(case.get("name")).split("[")[0] for case in report.iter("testcase")}
        assert self.cases <= ran, sorted(self.cases - ran)

    def test_state_is_private_and_holds_no_caller_environment(self, live: LiveTestbed) -> None:
        """State folders 0700, secrets 0600, and no file (Ansible's artifacts included) holds
        the cloud password, Pulumi passphrase or CI token the first up ran with."""
        assert live.state_problems() == []

    def break_before_second_up(self, live: LiveTestbed) -> dict[str, int]:
        """A fault the second up must heal, made here, as the changes healing it takes per
        node (a testbed may hand its second up one, so that one up checks both)."""
        return {}

    def check_healed(self, live: LiveTestbed) -> None:
        """After the second up: the fault made before it is gone."""

    def test_second_up_changes_nothing(self, live: LiveTestbed) -> None:
        """Re-running every role (`up --full`) converges with changed=0 in the Ansible recap:
        on every node, or, where the testbed broke something before it, nothing but the
        repair. On nodes from baked images it runs the install steps too, which find
        everything they would install already in the image."""
        repair = self.break_before_second_up(live)
        proc = run_cli(
            "up", self.testbed, "--instance", self.instance, "--json", "--no-verify", "--full"
        )
        result = json.loads(proc.stdout)
        assert result["ansible"]["status"] == "successful", result["ansible"]
        assert "install steps" not in proc.stderr, "`up --full` skipped the install steps"
        changed = {node: n for node, n in result["ansible"]["changed_per_node"].items() if n}
        # The progress lines name each changed task and its node: the failure says which.
        tasks = [line for line in proc.stderr.splitlines() if "changed:" in line]
        assert changed == repair, (changed, tasks)
        assert result["ansible"]["changed"] == sum(repair.values())
        # Every role that ran is timed, in the state folder's record of this up.
        timings = json.loads((StateDir(self.instance).path / "timings-up.json").read_text())
        assert timings["roles_s"] and all(s >= 0 for s in timings["roles_s"].values())
        assert "slurm" in timings["roles_s"] or "common" in timings["roles_s"]
        self.check_healed(live)

    def test_up_with_nothing_changed_skips_the_roles(self, live: LiveTestbed) -> None:
        """After a successful up, an up with the same inputs on healthy nodes runs no role:
        every node's record matches and every unit it recorded still runs."""
        proc = run_cli("up", self.testbed, "--instance", self.instance, "--json", "--no-verify")
        result = json.loads(proc.stdout)
        assert result["ansible"]["status"] == "unchanged", proc.stderr[-2000:]
        assert result["ansible"]["changed"] == 0
        assert "configuration skipped" in proc.stderr

    def test_down_leaves_nothing(self, live: LiveTestbed) -> None:
        """down removes every container, network and volume with the instance's label (the
        elastic nodes Slurm started too), and stops the instance's node broker."""
        run_cli("down", self.instance)
        assert live.leftovers() == []
        assert broker_processes(self.instance) == []
        assert run_cli("status", self.instance, check=False).returncode == 3
