"""data-movement on the local podman target, for real: up -> checks -> idempotent up ->
faults (an endpoint down during replication, a corrupted source replica) -> down -> nothing
left. The testbed is brought up once (tests/e2e/lifecycle.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testbeds.checks.helpers import wait_for
from testbeds.targets import podman
from tests.e2e.lifecycle import Lifecycle
from tests.e2e.live import LiveTestbed
from tests.e2e.rucio_client import rucio_on_client

pytestmark = pytest.mark.e2e
INSTANCE = "e2e-dm"
JOBS_DIR = "/var/lib/rucio/gfal2-jobs"


def container(node: str) -> str:
    return f"{INSTANCE}-{node}"


@pytest.fixture(scope="class")
def rucio(live: LiveTestbed) -> Iterator[Callable[..., Any]]:
    """One Rucio operation on the client node; uploads with a storage token for the RSE."""
    with rucio_on_client(INSTANCE) as run:
        yield run


def transfer_jobs(file_name: str) -> list[dict[str, Any]]:
    """The gfal2 transfer tool's job records that copied this file, oldest first."""
    script = (
        "import json, pathlib, sys\n"
        f"jobs = [json.loads(p.read_text()) for p in pathlib.Path('{JOBS_DIR}').glob('*.json')]\n"
        f"mine = [j for j in jobs if any(f['name'] == '{file_name}' for f in j['files'])]\n"
        "print(json.dumps(sorted(mine, key=lambda j: j['submitted_at'])))\n"
    )
    proc = podman.exec_(container("ddm"), "python3", "-c", script)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def checksum_failures(name: str) -> list[str]:
    return [
        f["reason"]
        for j in transfer_jobs(name)
        for f in j["files"]
        if "CHECKSUM" in f.get("reason", "").upper()
    ]


class TestDataMovement(Lifecycle):
    testbed = "data-movement"
    instance = INSTANCE
    cases = frozenset(
        {
            "test_rule_replicates_dataset_to_two_more_endpoints",
            "test_every_replica_has_the_source_checksum",
            "test_deleting_the_rule_lets_the_reaper_remove_replicas",
            "test_third_party_copy_with_tokens_keeps_checksum",
            "test_requests_without_a_fitting_token_are_refused",
            "test_an_expired_token_is_refused",
        }
    )

    def test_endpoint_down_during_replication_is_retried_until_rule_ok(
        self, live: LiveTestbed, rucio: Callable[..., Any]
    ) -> None:
        """With the HPC endpoint stopped, the rule's transfer fails; once the endpoint is back,
        Rucio's retry copies the file and the rule reaches OK."""
        podman.run("exec", container("hpc"), "systemctl", "stop", "xrootd@testbed")
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
            rule = rucio("rule-add", dataset["did"], 1, "HPC")["rule"]
            name = dataset["files"][0]["name"]
            failed = wait_for(
                lambda: any(job["state"] == "FAILED" for job in transfer_jobs(name)), timeout=90
            )
            assert failed, f"no failed transfer while the endpoint was down: {transfer_jobs(name)}"
        finally:
            podman.run("exec", container("hpc"), "systemctl", "start", "xrootd@testbed")
        assert wait_for(lambda: rucio("rule", rule)["state"] == "OK", timeout=120, interval=3), (
            rucio("rule", rule)
        )
        states = [job["state"] for job in transfer_jobs(name)]
        assert states[0] == "FAILED" and states[-1] == "DONE", states
        assert "connect" in transfer_jobs(name)[0]["files"][0]["reason"].lower()

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
        podman.run("exec", container("site1"), "sh", "-c", damage)
        rule = rucio("rule-add", dataset["did"], 1, "SITE2")["rule"]
        assert wait_for(lambda: bool(checksum_failures(name)), timeout=90), transfer_jobs(name)
        assert all(job["state"] != "DONE" for job in transfer_jobs(name))
        replicas = rucio("replicas", dataset["did"])[name]["replicas"]
        assert set(replicas) == {"SITE1"}, replicas
        assert rucio("rule", rule)["state"] != "OK"
        good = rucio("download", sound["did"], "/tmp/downloads", token_for="site1")
        assert good == {sound["files"][0]["name"]: "DONE"}, good
        bad = rucio("download", dataset["did"], "/tmp/downloads", token_for="site1")
        assert bad.get(name) != "DONE", bad
        assert "NoFilesDownloaded" in bad.get("error", ""), bad
