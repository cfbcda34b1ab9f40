"""data-movement's faults, run on any live instance that holds its groups (site1, site2, ddm,
client): an endpoint down during replication, a corrupted source replica. The class that
brings the instance up mixes them in (tests/e2e/test_local_research_infrastructure.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from testbeds.checks.helpers import wait_for
from testbeds.targets.local import podman
from tests.e2e.live import LiveTestbed

JOBS_DIR = "/var/lib/rucio/gfal2-jobs"


class DataMovementFaults:
    instance: ClassVar[str]

    def container(self, node: str) -> str:
        return f"{self.instance}-{node}"

    def transfer_jobs(self, file_name: str) -> list[dict[str, Any]]:
        """The gfal2 transfer tool's job records that copied this file, oldest first."""
        script = (
            f"import json, pathlib, sys\nfolder = pathlib.Path('{JOBS_DIR}')\n"
            "jobs = [json.loads(p.read_text()) for p in folder.glob('*.json')]\n"
            f"mine = [j for j in jobs if any(f['name'] == '{file_name}' for f in j['files'])]\n"
            "print(json.dumps(sorted(mine, key=lambda j: j['submitted_at'])))\n"
        )
        proc = podman.exec_(self.container("ddm"), "python3", "-c", script)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout))

    def checksum_failures(self, name: str) -> list[str]:
        return [
            f["reason"]
            for j in self.transfer_jobs(name)
            for f in j["files"]
            if "CHECKSUM" in f.get("reason", "").upper()
        ]

    def test_endpoint_down_during_replication_is_retried_until_rule_ok(
        self, live: LiveTestbed, rucio: Callable[..., Any]
    ) -> None:
        """With a grid site's endpoint stopped, the rule's transfer fails; once the endpoint is
        back (before the transfer's retries are spent), Rucio's retry copies the file and the
        rule reaches OK."""
        podman.run("exec", self.container("site2"), "systemctl", "stop", "xrootd@testbed")
        try:
            dataset = rucio(
                "dataset",
                "testbed",
                f"down-{uuid.uuid4().hex[:8]}",
                "SITE1",
                1,
                65536,
                token_for="site1",
            )
            rule = rucio("rule-add", dataset["did"], 1, "SITE2")["rule"]
            name = dataset["files"][0]["name"]
            failed = wait_for(
                lambda: any(job["state"] == "FAILED" for job in self.transfer_jobs(name)),
                timeout=90,
            )
            assert failed, (
                f"no failed transfer while the endpoint was down: {self.transfer_jobs(name)}"
            )
        finally:
            podman.run("exec", self.container("site2"), "systemctl", "start", "xrootd@testbed")
        assert wait_for(lambda: rucio("rule", rule)["state"] == "OK", timeout=120, interval=3), (
            rucio("rule", rule)
        )
        states = [job["state"] for job in self.transfer_jobs(name)]
        assert states[0] == "FAILED" and states[-1] == "DONE", states
        assert "connect" in self.transfer_jobs(name)[0]["files"][0]["reason"].lower()

    def test_a_restarted_memcached_restarts_rucio_which_answers_every_request(
        self, live: LiveTestbed, rucio: Callable[..., Any]
    ) -> None:
        """A package upgrade or an operator restarts memcached: Rucio's server and daemons,
        whose connections to it that leaves dead (each would fail its next request with HTTP
        500), restart with it, and every request after that answers."""
        ddm = self.container("ddm")
        units = ("rucio-server", "rucio-conveyor-submitter")

        def started(unit: str) -> str:
            shown = podman.exec_(ddm, "systemctl", "show", "-p", "ExecMainStartTimestampMonotonic",
                                 "--value", unit)  # fmt: skip
            return shown.stdout.strip()

        before = {unit: started(unit) for unit in units}
        restart = podman.exec_(ddm, "systemctl", "restart", "memcached", timeout=120)
        assert restart.returncode == 0, restart.stderr
        after = {unit: started(unit) for unit in units}
        assert all(after[unit] != before[unit] for unit in units), (before, after)

        def answers() -> bool:
            try:
                rucio("topology")
            except AssertionError:  # the server is still starting
                return False
            return True

        assert wait_for(answers, timeout=90, interval=2), "Rucio does not answer after the restart"
        for _ in range(4):  # more requests than the server has workers (connections)
            rucio("topology")

    def test_corrupted_replica_is_detected_never_reported_good(
        self, live: LiveTestbed, rucio: Callable[..., Any]
    ) -> None:
        """A source replica damaged on disk fails every copy on its checksum, never becomes a
        replica elsewhere, and cannot be downloaded (with a token that downloads a sound
        file)."""
        dataset = rucio(
            "dataset",
            "testbed",
            f"bad-{uuid.uuid4().hex[:8]}",
            "SITE1",
            1,
            65536,
            token_for="site1",
        )
        sound = rucio(
            "dataset",
            "testbed",
            f"good-{uuid.uuid4().hex[:8]}",
            "SITE1",
            1,
            65536,
            token_for="site1",
        )
        name = dataset["files"][0]["name"]
        damage = (
            f"f=$(find /srv/xrootd/data/rucio -name {name}) && "
            'printf X | dd of="$f" bs=1 seek=100 conv=notrunc status=none'
        )
        podman.run("exec", self.container("site1"), "sh", "-c", damage)
        rule = rucio("rule-add", dataset["did"], 1, "SITE2")["rule"]
        assert wait_for(lambda: bool(self.checksum_failures(name)), timeout=90), self.transfer_jobs(
            name
        )
        assert all(job["state"] != "DONE" for job in self.transfer_jobs(name))
        replicas = rucio("replicas", dataset["did"])[name]["replicas"]
        assert set(replicas) == {"SITE1"}, replicas
        assert rucio("rule", rule)["state"] != "OK"
        good = rucio("download", sound["did"], "/tmp/downloads", token_for="site1")
        assert good == {sound["files"][0]["name"]: "DONE"}, good
        bad = rucio("download", dataset["did"], "/tmp/downloads", token_for="site1")
        assert bad.get(name) != "DONE", bad
        assert "NoFilesDownloaded" in bad.get("error", ""), bad
