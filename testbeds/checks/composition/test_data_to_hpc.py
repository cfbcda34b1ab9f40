"""Data to HPC: a Rucio rule to the HPC site puts a dataset on the cluster's data-transfer
node, whose storage is the cluster's shared filesystem, and a Slurm job on a compute node
reads every file there by the POSIX path its replica has, as the research user."""

from __future__ import annotations

import base64
import posixpath
import time
import uuid
from urllib.parse import urlparse

import pytest

from testbeds.checks.data_management.test_rucio import rse_name
from testbeds.checks.helpers import wait_for
from testbeds.checks.storage_tokens import WRITE_SCOPES as WRITE

DATASET_FILES = 3
FILE_BYTES = 256 * 1024 + 7
REPLICATION_TIMEOUT_S = 180
JOB_TIMEOUT_S = 180

# Run in the Slurm job: each file's adler32 as Rucio writes it (8 hex digits), read by path.
READER = """\
import socket, sys, zlib
for path in sys.argv[1:]:
    value = 1
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            value = zlib.adler32(block, value)
    print(socket.gethostname(), path, f"{value:08x}")
"""


def replica_paths(rucio, at_hpc) -> dict[str, dict[str, object]]:
    """Each file's POSIX path at the HPC site, as Rucio gives it (file:// protocol), with
    the size and adler32 Rucio holds for the file."""
    found = rucio("paths", at_hpc["did"], at_hpc["rse"])
    assert len(found) == DATASET_FILES, found
    return {urlparse(entry["pfn"]).path: entry for entry in found.values()}


@pytest.fixture(scope="module")
def at_hpc(testbed, rucio, tokens):
    """A dataset uploaded at a grid site and a rule asking for a copy at the HPC site."""
    hpc_nodes = set(testbed.group("hpc"))
    grid = [node for node in testbed.group("xrootd") if node not in hpc_nodes]
    dataset = rucio(
        "dataset",
        "testbed",
        f"hpc-{uuid.uuid4().hex[:8]}",
        rse_name(grid[0]),
        DATASET_FILES,
        FILE_BYTES,
        token_file=tokens.get(grid[0], WRITE).token,
    )
    hpc = rse_name(testbed.group("hpc")[0])
    started = time.monotonic()
    rule = rucio("rule-add", dataset["did"], 1, hpc)["rule"]
    reached = wait_for(
        lambda: rucio("rule", rule)["state"] == "OK", timeout=REPLICATION_TIMEOUT_S, interval=3
    )
    return {**dataset, "rule": rule, "rse": hpc, "ok": reached, "took": time.monotonic() - started}


def test_rule_to_the_hpc_site_reaches_ok(at_hpc, rucio, record_property):
    """The rule to the cluster's transfer node reaches OK, every file's lock OK."""
    state = rucio("rule", at_hpc["rule"])
    assert at_hpc["ok"], f"rule not OK after {REPLICATION_TIMEOUT_S}s: {state}"
    assert state["locks_ok_cnt"] == DATASET_FILES
    record_property(
        "rule_to_hpc",
        f"{DATASET_FILES} files at the HPC site {at_hpc['took']:.1f} s after the rule",
    )


def test_rucio_gives_each_hpc_replicas_path_on_the_shared_filesystem(testbed, at_hpc, rucio):
    """Rucio gives each HPC replica's POSIX path (file:// on the HPC RSE, LAN reads only):
    the file is there on the login node's shared filesystem, at the endpoint's storage, with
    the size Rucio holds, in folders every account reads and none but XRootD writes."""
    assert at_hpc["ok"]
    login = testbed.host(testbed.group("slurm_login")[0])
    storage = testbed.node_value(testbed.group("hpc")[0], "xrootd_storage_dir")
    for path, entry in replica_paths(rucio, at_hpc).items():
        assert testbed.on_shared_filesystem(path), path
        assert path.startswith(f"{storage}/"), path
        assert login.file(path).size == entry["bytes"], path
        # Every account may read the replicas; only XRootD writes them.
        folder = login.file(posixpath.dirname(path))
        assert folder.mode & 0o007 == 0o005, f"{folder.path}: {oct(folder.mode)}"
        assert login.file(path).mode & 0o007 == 0o004, f"{path}: {oct(login.file(path).mode)}"


def test_slurm_job_reads_every_replica_by_its_path(
    testbed, at_hpc, rucio, user_shell, record_property
):
    """A batch job of the research user on a compute node reads each replica by its POSIX
    path and computes the adler32 Rucio holds for the file."""
    assert at_hpc["ok"]
    paths = {path: entry["adler32"] for path, entry in replica_paths(rucio, at_hpc).items()}
    login = testbed.host(testbed.group("slurm_login")[0])
    tag = uuid.uuid4().hex[:8]
    script = f"hpc-read-{tag}.py"
    encoded = base64.b64encode(READER.encode()).decode()
    written = user_shell(login, f"echo {encoded} | base64 -d > {script}")
    assert written.rc == 0, written.stderr
    started = time.monotonic()
    job = user_shell(
        login,
        f"timeout {JOB_TIMEOUT_S} sbatch --wait --parsable --output=hpc-read-{tag}.out "
        f"--wrap 'python3 {script} {' '.join(paths)}'",
    )
    assert job.rc == 0, f"job failed: {job.stdout}{job.stderr}"
    took = time.monotonic() - started
    output = user_shell(login, f"cat hpc-read-{tag}.out; rm -f {script} hpc-read-{tag}.out")
    lines = [line.split() for line in output.stdout.splitlines() if line.strip()]
    assert {path: value for _, path, value in lines} == paths, output.stdout
    assert {node for node, _, _ in lines} <= set(testbed.group("slurm_compute")), output.stdout
    record_property(
        "hpc_job_reads_replicas",
        f"job {job.stdout.strip()} read {len(paths)} replicas in place, {took:.1f} s from sbatch",
    )
