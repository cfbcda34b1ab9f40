"""After an interrupted run, ansible-playbook processes still working on the instance's
inventory are stopped, with what they started; other processes are left alone."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil

from testbeds.runner import _stop_leftovers

SLEEPER = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
    "time.sleep(120)"
)


def spawn(*args: str) -> psutil.Process:
    """A process whose command line stands in for ansible-playbook's, with a child."""
    proc = psutil.Process(
        subprocess.Popen([sys.executable, "-c", SLEEPER, *args], start_new_session=True).pid
    )
    deadline = time.monotonic() + 10
    while not (proc.cmdline()[-1:] == [args[-1]] and proc.children()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def ended(procs: list[psutil.Process], timeout_s: float) -> bool:
    """Whether every process has exited within the time. An exited process whose parent
    has not reaped it yet (a zombie, e.g. a grandchild waiting for init) has ended too."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = []
        for proc in procs:
            with suppress(psutil.NoSuchProcess):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    running.append(proc)
        if not running:
            return True
        if time.monotonic() > deadline:
            return False
        psutil.wait_procs(running, timeout=0.2)


def test_orphaned_playbook_of_this_inventory_is_stopped(tmp_path: Path) -> None:
    inventory = str(tmp_path / "state" / "e2e" / "inventory" / "hosts.yml")
    other_inventory = str(tmp_path / "state" / "other" / "inventory" / "hosts.yml")
    ours = spawn("ansible-playbook", "-i", inventory, "site.yml")
    started = ours.children()
    theirs = spawn("ansible-playbook", "-i", other_inventory, "site.yml")
    try:
        assert _stop_leftovers(inventory, grace_s=5) == 1
        assert ended([ours, *started], timeout_s=10)
        assert theirs.is_running()
    finally:
        for proc in [theirs, *theirs.children(), ours, *started]:
            with suppress(psutil.Error):
                proc.kill()
