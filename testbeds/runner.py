"""Run a testbed playbook with ansible-runner, showing its events as live progress."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from ansible_runner.interface import init_runner

from testbeds import deadlines, paths
from testbeds.errors import DeployError
from testbeds.progress import heartbeat, say
from testbeds.state import PlayTiming, RoleTiming

# What of the caller's environment ansible-playbook gets: ansible-runner also writes the
# whole environment into its artifacts (`command`), so cloud passwords, Pulumi
# passphrases and CI tokens must never reach it.
_PASSED_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TZ",
        "TMPDIR",
        "SHELL",
        "VIRTUAL_ENV",
        "SSH_AUTH_SOCK",
    }
)
_PASSED_PREFIXES = ("LC_",)


def _runner_environment(env: dict[str, str], ours: dict[str, str]) -> dict[str, str]:
    """The caller's safe variables, ours, and what ansible-runner itself set."""
    kept = {
        key: value
        for key, value in env.items()
        if key in _PASSED_VARIABLES or key.startswith(_PASSED_PREFIXES) or key in ours
    }
    # ansible-runner adds its own (ANSIBLE_*, RUNNER_*, PYTHONUNBUFFERED, ...) on top of
    # the copy of os.environ it starts from: keep those, drop the rest of os.environ.
    added = {k: v for k, v in env.items() if k not in os.environ or os.environ[k] != v}
    return {**kept, **added}


@dataclass
class PlaybookResult:
    status: str
    rc: int
    changed: dict[str, int]
    failures: list[str]
    role_seconds: dict[str, float] = field(default_factory=dict)
    artifacts: str = ""
    roles: list[RoleTiming] = field(default_factory=list)
    plays: list[PlayTiming] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # "unchanged": not run, since nothing changed since the last successful run.
        return self.rc == 0 and self.status in ("successful", "unchanged")

    @property
    def changed_total(self) -> int:
        return sum(self.changed.values())


def _seconds(data: dict[str, Any]) -> float:
    try:
        start = datetime.fromisoformat(data["start"])
        end = datetime.fromisoformat(data["end"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (end - start).total_seconds()


class _Progress:
    """Turns runner events into one line per task and per changed or failed host."""

    def __init__(
        self,
        verbose: bool,
        baked_hosts: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verbose = verbose
        self.clock = clock
        self.baked_hosts = baked_hosts
        self.failures: list[str] = []
        # Per (role, node): task seconds, for each role's time on baked and warm nodes.
        self.role_node_seconds: dict[tuple[str, str], float] = defaultdict(float)
        # The play running now: its name, start and each node's task seconds in it.
        self.plays: list[PlayTiming] = []
        self.play: tuple[str, float] | None = None
        self.play_node_seconds: dict[str, float] = defaultdict(float)
        # A failed loop reports only "One or more items failed"; its items say why.
        self.failed_items: dict[str, list[str]] = defaultdict(list)
        # The task running now and since when, for the heartbeat of a long task.
        self.task = ""
        self.task_started = time.monotonic()

    def status(self) -> str:
        """What a silent run is at: the task that is taking its time."""
        running = time.monotonic() - self.task_started
        return f"  ... {self.task or 'starting'} ({running:.0f}s so far)"

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host = data.get("host", "")
        task = data.get("task", "")
        role = data.get("role") or "playbook"
        label = f"{role} : {task}" if data.get("role") else task
        if kind == "playbook_on_play_start":
            now = self.clock()
            self.close_play(now)
            self.play = (str(data.get("play", "")), now)
            say(f"PLAY {data.get('play', '')}")
        elif kind == "playbook_on_task_start":
            self.task, self.task_started = label, time.monotonic()
            if self.verbose:
                say(f"  TASK {label}")
        elif kind == "runner_item_on_failed":
            result = data.get("res", {}) or {}
            item = result.get("_ansible_item_label", result.get("item", "?"))
            self.failed_items[host].append(f"item {item}: {_failure_text(result)}")
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            seconds = _seconds(data)
            self.role_node_seconds[(role, host)] += seconds
            self.play_node_seconds[host] += seconds
            result = data.get("res", {}) or {}
            item_failures = self.failed_items.pop(host, [])
            if kind == "runner_on_ok":
                if result.get("changed"):
                    say(f"  [{host}] changed: {label}")
            elif kind == "runner_on_failed" and data.get("ignore_errors"):
                say(f"  [{host}] failed (ignored): {label}")
            else:
                why = " | ".join(item_failures) or _failure_text(result)
                state = "unreachable" if kind == "runner_on_unreachable" else "FAILED"
                self.failures.append(f"node {host}, step '{label}': {why}")
                say(f"  [{host}] {state}: {label}: {why}")
        return True  # keep the event in the artifacts

    def close_play(self, now: float | None = None) -> None:
        """Record the play that ran until now (at the next play, or at the end)."""
        if self.play is not None:
            name, started = self.play
            busiest = max(self.play_node_seconds.values(), default=0.0)
            wall = (self.clock() if now is None else now) - started
            self.plays.append(PlayTiming(name, round(wall, 2), round(busiest, 2)))
        self.play = None
        self.play_node_seconds = defaultdict(float)

    def role_seconds(self) -> dict[str, float]:
        """Each role's task time summed over every node."""
        summed: dict[str, float] = defaultdict(float)
        for (role, _), seconds in self.role_node_seconds.items():
            summed[role] += seconds
        return {role: round(seconds, 2) for role, seconds in sorted(summed.items())}

    def role_timings(self) -> list[RoleTiming]:
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        nodes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (role, host), seconds in self.role_node_seconds.items():
            kind = "baked" if host in self.baked_hosts else "warm"
            sums[role][kind] += seconds
            nodes[role][kind] += 1
        return [
            RoleTiming(
                role,
                round(sums[role]["baked"], 2),
                nodes[role]["baked"],
                round(sums[role]["warm"], 2),
                nodes[role]["warm"],
            )
            for role in sorted(sums)
        ]


def _failure_text(result: dict[str, Any]) -> str:
    if result.get("_ansible_no_log") or result.get("censored"):
        return "(output hidden: the task handles a secret)"
    parts = [str(result.get("msg", "")).strip()]
    for key in ("stderr", "module_stderr", "stdout"):
        text = str(result.get(key, "")).strip()
        if text:
            parts.append(text.splitlines()[-1] if len(text) > 300 else text)
    return " | ".join(p for p in parts if p) or "no message"


def _strategy_env() -> dict[str, str]:
    """Use Mitogen's strategy when it is installed: it keeps one Python interpreter per node
    for the whole run instead of starting one per task. TESTBED_ANSIBLE_STRATEGY=linear
    turns it off."""
    wanted = os.environ.get("TESTBED_ANSIBLE_STRATEGY", "mitogen_linear")
    if not wanted.startswith("mitogen"):
        return {"ANSIBLE_STRATEGY": wanted}
    try:
        import ansible_mitogen
    except ImportError:
        return {}
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": wanted}


@contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """Turn Ctrl-C (SIGINT) or SIGTERM into a request to cancel the run.

    ansible-runner starts ansible-playbook in a session of its own, out of reach of the
    terminal's Ctrl-C; cancelling through the runner stops it and every task it started."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_leftovers(inventory: str, grace_s: float = 3.0) -> int:
    """Stop every ansible-playbook process still running with this inventory, and what it
    started: a cancelled runner does not always take the playbook's process down with it,
    and an orphan would keep working on the nodes. Returns how many were found."""
    found = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if proc.pid != os.getpid()
        and inventory in (proc.info["cmdline"] or [])
        and any("ansible-playbook" in part for part in proc.info["cmdline"] or [])
    ]
    doomed = list(found)
    for proc in found:
        with suppress(psutil.Error):
            doomed += proc.children(recursive=True)
    for proc in doomed:
        with suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(doomed, timeout=grace_s)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    return len(found)


def _search_path() -> str:
    """PATH with the folder of the Python running `testbed` first: its virtual environment's
    ansible-playbook runs even when nobody activated the environment (a `testbed` run by
    its path, a broker it started)."""
    scripts = str(Path(sys.executable).parent)
    rest = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d != scripts]
    return os.pathsep.join([scripts, *rest])


def ansible_environment(private_dir: Path, forks: int) -> dict[str, str]:
    """The repository's ansible.cfg (what a hand-run uses too), plus what belongs to this
    run: the project's roles (TESTBED_HOME may move them), forks, the instance's own fact
    cache and temporary folder, plain output for the event parser, Mitogen's strategy, and
    the running Python's scripts folder first on PATH."""
    return {
        "ANSIBLE_CONFIG": str(paths.ANSIBLE_CONFIG),
        "ANSIBLE_ROLES_PATH": str(paths.roles_dir()),
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_FACT_CACHING": "jsonfile",
        "ANSIBLE_FACT_CACHING_CONNECTION": str(private_dir / "facts"),
        "ANSIBLE_FACT_CACHING_TIMEOUT": "600",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
        "PATH": _search_path(),
        **_strategy_env(),
    }


def run_playbook(
    playbook: Path,
    inventories: list[str],
    private_dir: Path,
    forks: int,
    verbose: bool = False,
    limit: str | None = None,
    tags: list[str] | None = None,
    skip_tags: list[str] | None = None,
    baked_hosts: frozenset[str] = frozenset(),
) -> PlaybookResult:
    """Run the playbook; artifacts of the last runs stay under private_dir/artifacts.
    `baked_hosts` started from a baked image: their role times are told apart."""
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # We hold the instance's lock: a playbook still working on this inventory is an
    # orphan of a run that was killed (even with SIGKILL), and must not race with ours.
    orphans = _stop_leftovers(inventories[-1])
    if orphans:
        say(f"stopped {orphans} ansible-playbook process(es) left by an earlier run")
    progress = _Progress(verbose, baked_hosts)
    timeout_s = deadlines.seconds("ansible")
    envvars = ansible_environment(private_dir, forks)
    previous_umask = os.umask(0o077)  # files Ansible writes on the control node: 0600
    try:
        with _interruptible() as stop:
            runner = init_runner(
                private_data_dir=str(private_dir),
                playbook=str(playbook),
                inventory=inventories,
                envvars=envvars,
                quiet=True,
                event_handler=progress,
                cancel_callback=stop.is_set,
                rotate_artifacts=5,
                limit=limit,
                tags=",".join(tags) if tags else None,
                skip_tags=",".join(skip_tags) if skip_tags else None,
                timeout=timeout_s,
                settings={"suppress_ansible_output": True},
                cmdline=os.environ.get("TESTBED_ANSIBLE_ARGS"),
            )
            runner.config.env = _runner_environment(runner.config.env, envvars)
            with heartbeat(progress.status):
                runner.run()
            progress.close_play()
    finally:
        os.umask(previous_umask)
    if runner.status == "timeout":
        _stop_leftovers(inventories[-1])
        raise DeployError(deadlines.expired("ansible", timeout_s, f"running {playbook.name}"))
    if stop.is_set():
        stopped = _stop_leftovers(inventories[-1])
        say(f"interrupted: ansible-playbook was stopped ({stopped} process(es))")
        raise KeyboardInterrupt
    stats: dict[str, dict[str, int]] = runner.stats or {}
    changed = {host: n for host, n in (stats.get("changed") or {}).items()}
    unreachable = stats.get("dark") or {}
    failures = list(progress.failures)
    if unreachable and not failures:
        failures = [f"node {h}: unreachable" for h in sorted(unreachable)]
    return PlaybookResult(
        status=str(runner.status),
        rc=int(runner.rc),
        changed=changed,
        failures=failures,
        role_seconds=progress.role_seconds(),
        artifacts=str(runner.config.artifact_dir),
        roles=progress.role_timings(),
        plays=list(progress.plays),
    )
