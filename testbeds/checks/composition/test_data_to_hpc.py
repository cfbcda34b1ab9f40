"""Data to HPC and results back: a Rucio rule to the HPC site puts a dataset on the
cluster's data-transfer node, whose storage is the cluster's shared filesystem; a Slurm job
of the research user on a compute node reads every file there by the POSIX path its
replica has, and puts its result back into the datalake with the user's own tokens
(written to the transfer node, registered in Rucio, copied to a grid site by the user's
rule, checksums verified)."""

from __future__ import annotations

import base64
import json
import posixpath
import time
import uuid
from urllib.parse import urlparse

import pytest

from testbeds.checks.data_management.test_rucio import rse_name
from testbeds.checks.data_management.test_user_accounts import RUCIO_SCOPES, rucio_url
from testbeds.checks.device_flow import Terminal
from testbeds.checks.helpers import endpoint_adler32, wait_for
from testbeds.checks.storage_endpoints.test_user_tokens import USER_SCOPES
from testbeds.checks.storage_tokens import READ_SCOPES as READ
from testbeds.checks.storage_tokens import WRITE_SCOPES as WRITE
from testbeds.checks.storage_tokens import endpoint_audience

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

# Run in the Slurm job: a result from the replicas (each one's path and adler32), written
# to the user's area on the transfer node with the user's storage token, registered in
# Rucio at that area's RSE with the user's Rucio token, and a rule of the user's for a copy
# at a grid site. The spec names what to do; the tokens are files beside it (0600).
RESULT_JOB = """\
import json, os, socket, ssl, sys, urllib.error, urllib.request, zlib

spec = json.load(open(sys.argv[1]))
folder = os.path.dirname(sys.argv[1])
lines = []
for path in spec["inputs"]:
    value = 1
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            value = zlib.adler32(block, value)
    lines.append(f"{path} {value:08x}\\n")
result = "".join(lines).encode()
adler32 = f"{zlib.adler32(result):08x}"
tls = ssl.create_default_context(cafile=spec["ca"])


def call(method, url, body, headers):
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=tls, timeout=60) as answer:
            return answer.read().decode()
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {url}: HTTP {error.code} {error.read().decode()[:600]}")


def token(name):
    return open(os.path.join(folder, name)).read().strip()


call("PUT", spec["url"], result, {"Authorization": "Bearer " + token("storage.token")})
rucio = {"X-Rucio-Auth-Token": token("rucio.token"), "Content-Type": "application/json"}
did = {"scope": spec["scope"], "name": spec["name"]}
replica = {**did, "bytes": len(result), "adler32": adler32, "pfn": spec["pfn"]}
call("POST", spec["rucio"] + "/replicas",
     json.dumps({"rse": spec["rse"], "files": [replica]}).encode(), rucio)
rule = {"dids": [did], "copies": 1, "rse_expression": spec["to"], "account": spec["account"]}
rules = json.loads(call("POST", spec["rucio"] + "/rules/", json.dumps(rule).encode(), rucio))
print(json.dumps({"node": socket.gethostname(), "bytes": len(result), "adler32": adler32,
                  "rule": rules[0]}))
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


@pytest.fixture(scope="module")
def result_back(testbed, at_hpc, rucio, user_shell):
    """The research user's job puts a result computed from the HPC replicas back into the
    datalake: it writes it to the user's area on the transfer node, registers it in Rucio
    at that area's RSE (<HPC>_USERDISK) and adds a rule for a copy at a grid site, all with
    the user's own tokens, which the user got on the login node beforehand."""
    assert at_hpc["ok"]
    user = testbed.research_user
    login_node = testbed.group("slurm_login")[0]
    login = testbed.host(login_node)
    hpc = testbed.group("hpc")[0]
    grid = next(node for node in testbed.group("xrootd") if node != hpc)
    tag = uuid.uuid4().hex[:8]
    folder = f".results-{tag}"
    assert user_shell(login, f"umask 077 && mkdir {folder}").rc == 0
    home = user_shell(login, "pwd").stdout.strip()
    storage = Terminal(testbed, login, USER_SCOPES)
    for_rucio = Terminal(testbed, login, RUCIO_SCOPES)
    try:
        tokens = {
            "storage.token": storage.accounts_token(user, endpoint_audience(testbed, hpc)).token,
            "rucio.token": for_rucio.accounts_token(user, rucio_url(testbed)).token,
        }
        for name, path in tokens.items():  # through a pipe: never on a command line
            handed = login.run(f"su - {user} -c 'umask 077 && cat > {folder}/{name}' < {path}")
            assert handed.rc == 0, handed.stderr
    finally:
        storage.close()
        for_rucio.close()
    name = f"result-{tag}.txt"
    export = testbed.value("xrootd_export_path")
    https = endpoint_audience(testbed, hpc)
    spec = {
        "inputs": sorted(replica_paths(rucio, at_hpc)),
        "url": f"{https}{export}/users/{user}/files/{name}",
        "pfn": f"davs://{https.removeprefix('https://')}{export}/users/{user}/files/{name}",
        "rucio": rucio_url(testbed),
        "rse": f"{rse_name(hpc)}_USERDISK",
        "scope": f"user.{user}",
        "name": name,
        "to": rse_name(grid),
        "account": user,
        "ca": testbed.value("testbed_ca_file"),
    }
    for file, text in (("spec.json", json.dumps(spec)), ("job.py", RESULT_JOB)):
        encoded = base64.b64encode(text.encode()).decode()
        assert user_shell(login, f"echo {encoded} | base64 -d > {folder}/{file}").rc == 0
    started = time.monotonic()
    job = user_shell(
        login,
        f"timeout {JOB_TIMEOUT_S} sbatch --wait --parsable --output={folder}/job.out "
        f"--wrap 'python3 {home}/{folder}/job.py {home}/{folder}/spec.json'",
    )
    output = user_shell(login, f"cat {folder}/job.out; rm -rf {folder}").stdout
    assert job.rc == 0, f"job failed: {job.stdout}{job.stderr}\n{output[-3000:]}"
    registered = time.monotonic() - started
    done = json.loads(output.strip().splitlines()[-1])
    reached = wait_for(
        lambda: rucio("rule", done["rule"])["state"] == "OK",
        timeout=REPLICATION_TIMEOUT_S,
        interval=3,
    )
    return {
        **done,
        "did": f"{spec['scope']}:{name}",
        "grid": grid,
        "ok": reached,
        "registered_s": registered,
        "took_s": time.monotonic() - started,
    }


def test_job_registers_its_result_in_rucio_with_the_users_tokens(testbed, result_back, rucio):
    """The job, on a compute node, wrote its result and registered it in Rucio as the
    research user (scope user.<name>, the user's own rule), at the users' area of the
    transfer node."""
    assert result_back["node"] in testbed.group("slurm_compute")
    state = rucio("rule", result_back["rule"])
    assert state["account"] == testbed.research_user, state
    assert state["scope"] == f"user.{testbed.research_user}", state


def test_users_rule_copies_the_result_to_a_grid_site_with_its_checksum(
    testbed, result_back, rucio, client, tokens, record_property
):
    """The user's rule reaches OK, Rucio copying the result from the transfer node to the
    grid site; the copy's adler32, as that endpoint computes it, is the one the job
    computed from its bytes."""
    assert result_back["ok"], rucio("rule", result_back["rule"])
    grid = rse_name(result_back["grid"])
    entry = rucio("replicas", result_back["did"])[result_back["did"].split(":", 1)[1]]
    assert entry["adler32"] == result_back["adler32"]
    pfn = entry["replicas"][grid]
    token = tokens.get(result_back["grid"], READ).token
    assert endpoint_adler32(client, pfn, token) == result_back["adler32"], pfn
    record_property(
        "result_back_to_grid",
        f"registered {result_back['registered_s']:.1f} s after sbatch, at {grid} "
        f"{result_back['took_s']:.1f} s after sbatch",
    )
