"""The files an instance's state folder holds, byte for byte where a person or another
tool reads them: JSON sorted and indented, secrets of the asked size, the timings file's
fields, a removal that touches only the instance's own folder and a backup of its secrets
in a dated private folder (testbeds/state.py)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from testbeds.state import (
    InstanceRecord,
    InvalidInstanceName,
    PlayTiming,
    RoleTiming,
    StateDir,
    Timings,
    check_instance_name,
    write_json,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_json_is_written_sorted_indented_and_private(tmp_path: Path) -> None:
    """Sorted keys and a fixed indent: a file that did not change reads the same, so a diff
    of two runs' state shows only what changed."""
    path = tmp_path / "state" / "x.json"
    write_json(path, {"b": [1], "a": {"d": 1, "c": 2}})
    assert path.read_text() == (
        '{\n  "a": {\n    "c": 2,\n    "d": 1\n  },\n  "b": [\n    1\n  ]\n}\n'
    )
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_a_secret_has_the_asked_size_and_is_made_once(tmp_path: Path) -> None:
    state = StateDir("sec", root=tmp_path)
    path = state.secret("munge.key", 48)
    first = path.read_bytes()
    assert len(first) == 48 and mode(path) == 0o600
    assert state.secret("munge.key", 48).read_bytes() == first


def test_a_bad_instance_name_is_refused_with_the_rule(tmp_path: Path) -> None:
    with pytest.raises(InvalidInstanceName) as refused:
        StateDir("../up", root=tmp_path)
    assert str(refused.value) == (
        "instance name '../up' is not valid: lower-case letters, digits and '-', starting "
        "with a letter, at most 31 characters"
    )
    # A long name is quoted in part: the message stays one readable line.
    with pytest.raises(InvalidInstanceName, match=f"'{'x' * 80}' is not valid"):
        check_instance_name("x" * 200)


def test_the_timings_file_holds_every_phase_role_and_play(tmp_path: Path) -> None:
    state = StateDir("timed", root=tmp_path)
    timings = Timings(
        phases={"provision": 1.25, "configure": 2.5},
        roles={"common": 3.0},
        role_nodes=[RoleTiming("common", baked_s=2.0, baked_nodes=3, warm_s=5.0, warm_nodes=0)],
        plays=[PlayTiming("common", wall_s=4.0, busiest_node_s=3.0)],
    )
    written = json.loads(state.write_timings("up", timings, {"changed": 0}).read_text())
    finished = written.pop("finished")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", finished), finished
    assert written == {
        "command": "up",
        "instance": "timed",
        "phases_s": {"provision": 1.25, "configure": 2.5},
        "roles_s": {"common": 3.0},
        "roles_per_node_s": {"common": {"baked": 0.67, "warm": None}},
        "plays_s": [{"play": "common", "wall": 4.0, "overhead": 1.0}],
        "total_s": 3.75,
        "changed": 0,
    }
    assert state.path / "timings-up.json" == tmp_path / "timed" / "timings-up.json"


def test_totals_and_per_node_times_keep_two_decimals() -> None:
    assert Timings(phases={"a": 0.111, "b": 0.222}).total() == 0.33
    assert (
        RoleTiming("r", baked_s=1.0, baked_nodes=3, warm_s=10.0, warm_nodes=4).per_node("warm")
        == 2.5
    )
    assert RoleTiming("r", 1.0, 3, 0.0, 0).per_node("baked") == 0.33


def test_the_record_reads_back_and_ignores_fields_it_does_not_know(tmp_path: Path) -> None:
    state = StateDir("rec", root=tmp_path)
    record = InstanceRecord("hpc-access", "hpc-access", "local", "local", "rec")
    state.write_record(record)
    data = json.loads(state.record_file.read_text())
    state.record_file.write_text(json.dumps({**data, "written_by": "a later version"}))
    assert state.read_record() == record
    with pytest.raises(ValueError, match="record of 'other' written to 'rec'"):
        state.write_record(InstanceRecord("x", "x", "local", "local", "other"))


def test_remove_deletes_the_instances_folder_only(tmp_path: Path) -> None:
    state = StateDir("gone", root=tmp_path)
    state.create()
    neighbour = StateDir("kept", root=tmp_path)
    neighbour.create()
    state.remove()
    assert not state.path.exists() and neighbour.path.is_dir()
    state.remove()  # nothing left to remove is not an error
    # A path that is no longer the instance's own folder is never removed.
    astray = StateDir("astray", root=tmp_path)
    astray.path = neighbour.path
    astray.remove()
    assert neighbour.path.is_dir()


def test_secrets_are_moved_to_a_dated_private_backup(tmp_path: Path) -> None:
    state = StateDir("site", root=tmp_path)
    assert state.back_up_secrets() is None  # no secrets: nothing to keep
    key = state.secret("ca.key", 32)
    content = key.read_bytes()
    backup = state.back_up_secrets()
    assert backup is not None and backup.parent == tmp_path / ".backups"
    assert re.fullmatch(r"site-\d{8}T\d{6}", backup.name), backup.name
    assert mode(backup.parent) == 0o700
    assert (backup / "ca.key").read_bytes() == content
    assert not state.secrets_dir.exists()


def test_a_name_of_the_tools_own_instances_is_refused_unless_the_tool_asks(
    tmp_path: Path,
) -> None:
    """A bake's builder instance (`bake.NAME`) cannot be named by a user: `down bake.x`
    would otherwise remove a bake in progress."""
    with pytest.raises(InvalidInstanceName):
        check_instance_name("bake.hpc-access")
    with pytest.raises(InvalidInstanceName):
        StateDir("bake.hpc-access", root=tmp_path)
    assert StateDir("bake.hpc-access", root=tmp_path, reserved_ok=True).path == (
        tmp_path / "bake.hpc-access"
    )


def test_a_folder_made_or_found_open_is_private(tmp_path: Path) -> None:
    from testbeds.state import ensure_private_dir

    made = ensure_private_dir(tmp_path / "a" / "b")
    assert mode(made) == 0o700
    found = tmp_path / "open"
    found.mkdir(mode=0o755)
    found.chmod(0o755)
    assert mode(ensure_private_dir(found)) == 0o700


def test_a_private_file_is_written_through_a_hidden_temporary_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renamed over the target in the same folder (so the rename is atomic), and removed
    again when the write fails, with the failure passed on as it was."""
    import os

    from testbeds.state import write_private

    target = tmp_path / "state" / "secret"
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def replace(source: str, destination: Path) -> None:
        renames.append((Path(source), Path(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    write_private(target, b"x")
    ((temporary, destination),) = renames
    assert temporary.parent == target.parent and temporary.name.startswith(".secret.")
    assert destination == target and target.read_bytes() == b"x" and mode(target) == 0o600

    def failing(source: str, destination: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space left"):
        write_private(target, b"y")
    assert [p.name for p in target.parent.iterdir()] == ["secret"]
    assert target.read_bytes() == b"x"
