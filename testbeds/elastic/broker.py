"""The node broker: the one way Slurm's power saving on the controller reaches what starts
and removes nodes.

It listens on a Unix socket in a folder of the instance's state that the target mounts into
the Slurm controller alone (no podman socket, no shell on the host). A connection counts
only if its peer runs as the controller's SlurmUser (the kernel says who, SO_PEERCRED); a
request names an action and nodes, and each node must be one of this instance's elastic
nodes (`requests`). The work runs after the answer, one action at a time per node: Slurm
waits for the node to register, not for the program. A resume that fails removes what it
started and marks the node DOWN with the reason, which requeues its jobs; a started node
that disappears is marked DOWN the same way.

Run by `up` as `python -m testbeds.elastic.broker INSTANCE` (see `service`)."""

from __future__ import annotations

import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from testbeds.elastic.requests import (
    MAX_REQUEST_BYTES,
    Action,
    Reply,
    RequestRefused,
    parse_request,
)
from testbeds.progress import say

WATCH_EVERY_S = 5.0
# What slurm.conf's Reason= may hold here: a short line of plain characters.
_REASON_UNSAFE = re.compile(r"[^A-Za-z0-9 .,:;_/()+-]")


class NodeKeeper(Protocol):
    """What starts and removes one target's elastic nodes of one instance."""

    elastic_nodes: frozenset[str]

    def allowed_uid(self) -> int | None:
        """The user id Slurm's programs run as on the controller (None: not known yet)."""

    def resume(self, node: str) -> None:
        """Start the node and configure it; raise if it cannot be."""

    def remove(self, node: str) -> None:
        """Remove the node and what it holds, if it exists."""

    def mark_down(self, node: str, reason: str) -> None:
        """Tell Slurm the node is DOWN, with the reason (its jobs are requeued)."""

    def vanished(self) -> list[str]:
        """Nodes started and configured that have since disappeared."""


def reason_text(error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return _REASON_UNSAFE.sub("_", first)[:200]


class Broker:
    def __init__(self, keeper: NodeKeeper, workers: int = 4) -> None:
        self.keeper = keeper
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="node")
        self.locks = {node: threading.Lock() for node in keeper.elastic_nodes}

    def answer(self, line: bytes, peer_uid: int) -> Reply:
        """Check a request and start carrying it out; the reply says which."""
        allowed = self.keeper.allowed_uid()
        if allowed is None or peer_uid != allowed:
            say(f"refused a request from uid {peer_uid}: only Slurm's programs may ask")
            return Reply(False, "refused: only the Slurm controller's SlurmUser may ask")
        try:
            request = parse_request(line, self.keeper.elastic_nodes)
        except RequestRefused as refused:
            say(f"refused a request: {refused}")
            return Reply(False, f"refused: {refused}")
        say(f"{request.action} {' '.join(request.nodes)}")
        for node in request.nodes:
            self.pool.submit(self.carry_out, request.action, node)
        return Reply(True, f"{request.action} {' '.join(request.nodes)}: under way")

    def carry_out(self, action: Action, node: str) -> None:
        with self.locks[node]:
            started = time.monotonic()
            try:
                if action == "resume":
                    self.keeper.resume(node)
                else:
                    self.keeper.remove(node)
            except Exception as error:  # reported to Slurm and in the log, never lost
                reason = reason_text(error)
                say(f"[{node}] {action} failed: {reason}")
                if action == "resume":
                    self._forget(node)
                    self.keeper.mark_down(node, f"resume failed: {reason}")
                return
            say(f"[{node}] {action} done in {time.monotonic() - started:.1f}s")

    def _forget(self, node: str) -> None:
        try:
            self.keeper.remove(node)
        except Exception as error:
            say(f"[{node}] removing what the failed resume left failed: {reason_text(error)}")

    def check_nodes(self) -> None:
        """Mark DOWN every started node that has disappeared (one being started or removed
        is left alone)."""
        for node in self.keeper.vanished():
            lock = self.locks[node]
            if not lock.acquire(blocking=False):
                continue
            try:
                say(f"[{node}] disappeared while up: marking it DOWN (its jobs are requeued)")
                self._forget(node)
                self.keeper.mark_down(node, "node vanished while up")
            finally:
                lock.release()

    def watch(self, stop: threading.Event, every_s: float = WATCH_EVERY_S) -> None:
        while not stop.wait(every_s):
            try:
                self.check_nodes()
            except Exception as error:
                say(f"watching the nodes failed this time: {reason_text(error)}")


def peer_uid(connection: socket.socket) -> int:
    creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    broker: Broker


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        reply = server.broker.answer(line, peer_uid(self.connection))
        self.wfile.write(reply.line())


def serve(broker: Broker, path: Path) -> None:
    """Answer on the socket at `path` until SIGTERM or SIGINT."""
    if path.is_socket():
        path.unlink()  # left by a broker that was killed
    server = _Server(str(path), _Handler)
    server.broker = broker
    # Anyone may connect; the peer's user id decides (see Broker.answer).
    path.chmod(0o666)
    stop = threading.Event()

    def stop_serving(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop_serving)
    signal.signal(signal.SIGINT, stop_serving)
    watcher = threading.Thread(target=broker.watch, args=(stop,), daemon=True)
    watcher.start()
    say(f"node broker listening on {path} for {len(broker.keeper.elastic_nodes)} elastic node(s)")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        path.unlink(missing_ok=True)
        broker.pool.shutdown(wait=False, cancel_futures=True)
        say("node broker stopped")


def main(argv: list[str]) -> int:
    from testbeds.elastic.local_nodes import LocalNodes
    from testbeds.targets.local.broker_service import broker_socket

    if len(argv) != 2:
        print("usage: python -m testbeds.elastic.broker INSTANCE", file=sys.stderr)
        return 2
    keeper = LocalNodes(argv[1])
    serve(Broker(keeper), broker_socket(keeper.state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
