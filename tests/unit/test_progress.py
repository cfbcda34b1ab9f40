"""Long work is never silent for more than the heartbeat: the base image's debootstrap and
Ansible's long tasks say what they are at (testbeds/progress.py)."""

from __future__ import annotations

import sys
import time

import pytest

from testbeds import progress, runner
from testbeds.targets.local import image


def test_a_silent_block_says_its_status_and_a_talkative_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[str] = []
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.2)
    with progress.heartbeat(lambda: "still at it", tell=said.append):
        time.sleep(0.9)
    assert 2 <= said.count("still at it") <= 5, said
    said.clear()
    # Speaking ten times as often as the heartbeat's period: a loaded machine may stretch a
    # sleep, never tenfold.
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.5)
    with progress.heartbeat(lambda: "still at it", tell=said.append):
        for _ in range(18):
            progress.say("working")
            time.sleep(0.05)
    assert said == []


def test_debootstrap_reports_its_stage_while_it_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in for debootstrap that prints a stage and then works quietly: the build
    says that stage while it waits, and returns its output and exit code."""
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.2)
    script = "print('I: Retrieving Release', flush=True); import time; time.sleep(0.8); exit(3)"
    said: list[str] = []
    code, output = image._run_with_progress(
        [sys.executable, "-c", script], 30, said.append, time.monotonic()
    )
    assert (code, output) == (3, ["I: Retrieving Release"])
    assert said and all("base image: debootstrap" in line for line in said), said
    assert said[-1].endswith(": Retrieving Release"), said


def test_debootstrap_that_runs_out_of_time_is_stopped_with_its_children() -> None:
    """Its children (which hold its output open) are stopped with it, at the deadline."""
    started = time.monotonic()
    code, _ = image._run_with_progress(
        ["sh", "-c", "sleep 30; echo done"], 0.5, lambda _: None, started
    )
    assert code is None and time.monotonic() - started < 5


def test_timings_tell_baked_from_warm_nodes_and_show_each_plays_overhead() -> None:
    """A role's task time per node on baked and on warm nodes, and per play its wall time
    against its busiest node's task time (the rest is the play's overhead)."""
    clock = iter([100.0, 110.0, 130.0])  # play 1 starts, play 2 starts, the run ends
    tracked = runner._Progress(False, frozenset({"a"}), clock=lambda: next(clock))

    def task(host: str, role: str, seconds: int) -> dict[str, object]:
        return {
            "event": "runner_on_ok",
            "event_data": {
                "host": host,
                "role": role,
                "task": "t",
                "start": "2026-01-01T00:00:00",
                "end": f"2026-01-01T00:00:{seconds:02d}",
                "res": {},
            },
        }

    tracked({"event": "playbook_on_play_start", "event_data": {"play": "one"}})
    for event in (task("a", "common", 2), task("b", "common", 6), task("b", "common", 1)):
        tracked(event)
    tracked({"event": "playbook_on_play_start", "event_data": {"play": "two"}})
    tracked(task("a", "slurm", 5))
    tracked.close_play()
    assert tracked.role_seconds() == {"common": 9.0, "slurm": 5.0}
    (common, slurm) = tracked.role_timings()
    assert (common.per_node("baked"), common.per_node("warm")) == (2.0, 7.0)
    assert (slurm.per_node("baked"), slurm.per_node("warm")) == (5.0, None)
    assert [(p.name, p.wall_s, p.busiest_node_s, p.overhead_s) for p in tracked.plays] == [
        ("one", 10.0, 7.0, 3.0),
        ("two", 20.0, 5.0, 15.0),
    ]
