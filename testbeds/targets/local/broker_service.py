"""The local target's node broker as a process: where it lives in an instance's state, and
starting and stopping it: `up` starts it (again, after a reboot) and `down` stops it before
removing anything. What the broker does is testbeds.elastic.broker, which this module
starts by name only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil

from testbeds import paths
from testbeds.digests import tree_digest
from testbeds.errors import DeployError
from testbeds.progress import say
from testbeds.state import StateDir, ensure_private_dir

# Where the Slurm controller sees the broker's socket folder.
BROKER_MOUNT = "/run/testbed-elastic"
SOCKET_NAME = "broker.sock"
MODULE = "testbeds.elastic.broker"
START_TIMEOUT_S = 30


def elastic_dir(state: StateDir) -> Path:
    return ensure_private_dir(state.path / "elastic")


def broker_socket_dir(state: StateDir) -> Path:
    """The folder mounted into the controller: the socket alone, readable by SlurmUser."""
    folder = elastic_dir(state) / "socket"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    return folder


def broker_socket(state: StateDir) -> Path:
    return broker_socket_dir(state) / SOCKET_NAME


def elastic_node_dir(state: StateDir, node: str) -> Path:
    """An elastic node's own files: its inventory, known host key, ssh_config, Ansible's."""
    return ensure_private_dir(elastic_dir(state) / "nodes" / node)


def _pid_file(state: StateDir) -> Path:
    return state.path / "elastic" / "broker.pid"


def log_file(state: StateDir) -> Path:
    return state.path / "elastic" / "broker.log"


def running_broker(state: StateDir) -> psutil.Process | None:
    """The instance's broker process, if one runs (a recycled pid is not taken for it)."""
    try:
        pid = int(_pid_file(state).read_text().split()[0])
        process = psutil.Process(pid)
        command = process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    if MODULE in command and state.instance in command:
        return process
    return None


def code_digest() -> str:
    """What the broker runs: a broker started by other code (an upgrade since) is restarted."""
    return tree_digest(paths.PACKAGE_DIR)[:16]


def _broker_environment() -> dict[str, str]:
    """What the broker needs of the caller's environment (where things are, the tool's own
    settings) and nothing else: a cloud password or CI token `up` was run with stays out of
    a process that lives on."""
    kept = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV")
    return {
        key: value
        for key, value in os.environ.items()
        if key in kept or key.startswith(("LC_", "XDG_", "TESTBED_"))
    }


def ensure_broker(instance: str, state: StateDir) -> None:
    """Start the instance's node broker unless it runs this code; wait for its socket."""
    running = running_broker(state)
    digest = code_digest()
    if running is not None:
        if _pid_file(state).read_text().split()[1:] == [digest]:
            return
        say("restarting the node broker: it runs an older version of the tool")
        stop_broker(state)
    socket_path = broker_socket(state)
    with open(log_file(state), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, instance],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives `up`, away from its terminal's Ctrl-C
            env=_broker_environment(),
        )
    _pid_file(state).write_text(f"{process.pid} {digest}\n", encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not socket_path.is_socket():
        if process.poll() is not None or time.monotonic() > deadline:
            raise DeployError(f"the node broker of {instance} did not start; see {log_file(state)}")
        time.sleep(0.1)


def stop_broker(state: StateDir) -> bool:
    """Stop the instance's broker if it runs; returns whether it did."""
    process = running_broker(state)
    if process is None:
        return False
    process.terminate()
    with suppress(psutil.Error):
        process.wait(timeout=10)
    with suppress(psutil.Error):
        process.kill()
    _pid_file(state).unlink(missing_ok=True)
    return True
