#!/usr/bin/python3
"""post-receive: tell the Buildbot master about every pushed branch head, so that a push
starts the repository's pipeline. The push itself has already succeeded; a master that
cannot be reached is reported to the pusher, not turned into a failed push.

The git_server role installs it with a hook wrapper that names its configuration file
(the master, the change source's account, the repositories' base URL)."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

ZERO = "0" * 40


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def changes(lines: list[str], repository: str) -> Iterator[dict[str, Any]]:
    for line in lines:
        old, new, ref = line.split()
        if new == ZERO or not ref.startswith("refs/heads/"):
            continue
        span = new if old == ZERO else f"{old}..{new}"
        files = git("log", "--format=", "--name-only", span, "--").split()
        yield {
            "branch": ref.removeprefix("refs/heads/"),
            "revision": new,
            "comments": git("log", "-1", "--format=%B", new).strip(),
            "files": sorted(set(files)),
            "who": os.environ.get("REMOTE_USER")
            or git("log", "-1", "--format=%an <%ae>", new).strip(),
            "repository": repository,
            "project": os.path.basename(os.getcwd()).removesuffix(".git"),
            # The master's addChange names the version control system `src`.
            "src": "git",
        }


def main(config_file: str) -> int:
    if os.environ.get("WP5_GIT_NO_NOTIFY") or not os.path.exists(config_file):
        return 0
    config = configparser.ConfigParser(interpolation=None)
    config.read(config_file)
    settings = config["buildbot"]
    name = os.path.basename(os.getcwd())
    pending = list(changes(sys.stdin.read().splitlines(), f"{settings['repository_base']}/{name}"))
    if not pending:
        return 0

    from twisted.cred import credentials
    from twisted.internet import defer, reactor, ssl
    from twisted.spread import pb

    host, port = settings["master"].rsplit(":", 1)
    outcome = {"ok": False}

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def send(change: dict[str, Any]) -> Any:
        """Buildbot's sendchange, over TLS: the master's certificate is checked against
        the node's trust store (the testbed CA) for its name."""
        factory = pb.PBClientFactory()
        login = factory.login(
            credentials.UsernamePassword(settings["user"].encode(), settings["password"].encode())
        )
        reactor.connectSSL(host, int(port), factory, ssl.optionsForClientTLS(host))
        remote = yield login
        try:
            yield remote.callRemote("addChange", change)
        finally:
            remote.broker.transport.loseConnection()

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def send_all() -> Any:
        try:
            for change in pending:
                yield send(change)
                print(f"CI notified: {change['branch']} at {change['revision'][:12]}")
            outcome["ok"] = True
        except Exception as error:  # any failure: report it, keep the push
            print(f"CI not notified ({settings['master']}): {error}", file=sys.stderr)
        finally:
            reactor.stop()

    reactor.callWhenRunning(send_all)
    reactor.run()
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
