"""The instance record: one typed record per instance, written only through StateDir, and
the target (not the record's keys) says which checks verify runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from testbeds.model.loader import load_definition
from testbeds.model.plan import resolve
from testbeds.state import InstanceRecord, StateDir
from testbeds.targets import get_target


def test_a_plans_record_round_trips(tmp_path: Path) -> None:
    plan = resolve("hpc-access", instance="rec")
    state = StateDir("rec", root=tmp_path)
    state.write_record(plan.record())
    record = state.read_record()
    assert record == InstanceRecord("hpc-access", "hpc-access", "local", "local", "rec")
    assert json.loads(state.record_file.read_text())["bake"] is False


def test_a_record_from_an_older_state_reads_without_unknown_keys(tmp_path: Path) -> None:
    state = StateDir("old", root=tmp_path)
    state.create()
    state.record_file.write_text(
        json.dumps(
            {
                "testbed": "smoke",
                "definition": "smoke",
                "site": "local",
                "target": "local",
                "instance": "old",
                "retired_key": 1,
            }
        )  # fmt: skip
    )
    assert state.read_record().testbed == "smoke"


def test_a_record_is_written_only_to_its_own_instance(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="written to 'other'"):
        StateDir("other", root=tmp_path).write_record(resolve("hpc-access", instance="x").record())


def test_the_target_chooses_the_checks() -> None:
    definition = load_definition("data-movement")
    record = resolve("data-movement", instance="dm").record()
    assert get_target("local").checks(definition, record).suites == tuple(definition.checks)
    deployed = replace(record, target="kubernetes", namespace="dm", context="ctx")
    run = get_target("kubernetes").checks(definition, deployed)
    assert run.suites == ("kubernetes",)
    assert run.env == {"WP5_K8S_NAMESPACE": "dm", "WP5_K8S_CONTEXT": "ctx"}
