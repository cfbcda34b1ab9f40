"""The life every testbed's end-to-end test follows on the local podman target, once:
up (with its checks) -> state private -> idempotent up -> the module's own faults -> down
leaves nothing. A module subclasses Lifecycle, names its testbed and instance and the
checks its first verify must include, and adds its faults as methods; tests/e2e/conftest.py
runs `test_down_leaves_nothing` after them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import ClassVar

import pytest

from tests.e2e.live import LiveTestbed, bring_up, run_cli

# How many checks each testbed's verify runs on the local target: all must run and pass.
CHECKS = {"research-infrastructure": 201, "pipelines": 44}


class Lifecycle:
    testbed: ClassVar[str]
    instance: ClassVar[str]
    # Checks (names without parameters) the first verify must have run.
    cases: ClassVar[frozenset[str]] = frozenset()

    @pytest.fixture(scope="class")
    def live(self) -> Iterator[LiveTestbed]:
        yield from bring_up(self.testbed, self.instance)

    def test_up_configures_and_passes_its_checks(self, live: LiveTestbed) -> None:
        """The first up changes the nodes, and its verify phase runs every check, passing."""
        assert live.first_up["ansible"]["changed"] > 0
        verify = live.first_up["verify"]
        assert verify["ok"], verify
        assert (verify["tests"], verify["failures"], verify["errors"]) == (
            CHECKS[self.testbed],
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

    def test_second_up_changes_nothing(self, live: LiveTestbed) -> None:
        """Re-running up converges with changed=0 in the Ansible recap."""
        proc = run_cli("up", self.testbed, "--instance", self.instance, "--json", "--no-verify")
        result = json.loads(proc.stdout)
        assert result["ansible"]["changed"] == 0, result["ansible"]["changed_per_node"]

    def test_down_leaves_nothing(self, live: LiveTestbed) -> None:
        """down removes every container, network and volume with the instance's label."""
        run_cli("down", self.instance)
        assert live.leftovers() == []
        assert run_cli("status", self.instance, check=False).returncode == 3
