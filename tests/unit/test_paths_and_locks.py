"""Where state, caches and locks live when nothing overrides them, and what a busy
instance's error says when its holder left no record: the parts of `paths` and `locks`
that the rest of the suite (which always sets TESTBED_STATE_DIR) never reaches."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from testbeds import paths
from testbeds.locks import InstanceBusy, instance_lock, lock_path


def test_state_and_cache_follow_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("TESTBED_STATE_DIR", "TESTBED_CACHE_DIR", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.state_root() == tmp_path / "home" / ".local" / "state" / "wp5-testbeds"
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "wp5-testbeds"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert paths.state_root() == tmp_path / "xdg-state" / "wp5-testbeds"
    assert paths.cache_root() == tmp_path / "xdg-cache" / "wp5-testbeds"
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    assert paths.state_root() == tmp_path / "state"
    assert paths.cache_root() == tmp_path / "cache"


def test_a_home_without_roles_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=rf"{tmp_path} has no roles/ folder; set TESTBED_HOME"
    ):
        paths.project_root()


def test_locks_live_in_a_private_hidden_folder_of_the_state_root() -> None:
    """Hidden, so that no listing of the state root takes it for an instance; private, so
    that no other user learns who works on what."""
    lock = lock_path("smoke")
    assert lock.parent == paths.state_root() / ".locks"
    assert lock.name == "smoke.lock"
    assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700


def test_a_holder_that_left_no_record_is_another_process() -> None:
    fd = os.open(lock_path("unrecorded"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"not json")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = r"'unrecorded' is busy: another process is working"
        with pytest.raises(InstanceBusy, match=busy), instance_lock("unrecorded", "testbed up x"):
            pass
    finally:
        os.close(fd)
