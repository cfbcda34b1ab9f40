"""Rucio: the server and its daemons, the storage elements the definition describes, and a
rule that replicates a dataset by third-party copy with every checksum verified."""

from __future__ import annotations

import shlex
import uuid

import pytest

from testbeds.checks.helpers import assert_service_running, endpoint_adler32, wait_for
from testbeds.checks.storage_tokens import READ_SCOPES as READ
from testbeds.checks.storage_tokens import WRITE_SCOPES as WRITE

DAEMONS = [
    "judge-evaluator",
    "judge-repairer",
    "judge-cleaner",
    "conveyor-submitter",
    "conveyor-poller",
    "conveyor-finisher",
    "reaper",
]
DATASET_FILES = 4
FILE_BYTES = 512 * 1024 + 3
REPLICATION_TIMEOUT_S = 180
DELETION_TIMEOUT_S = 180


def rse_name(node: str) -> str:
    return node.upper()


def rse_node(testbed, rse: str) -> str:
    return next(node for node in testbed.group("xrootd") if rse_name(node) == rse)


@pytest.mark.nodes("rucio")
def test_rucio_server_running(host):
    """The REST server (gunicorn) is active and enabled."""
    assert_service_running(host, "rucio-server")


def cache_items(venv: str, socket: str) -> str:
    """A command printing how many entries the cache holds, with the cache's own client
    library from Rucio's environment."""
    program = (
        "from pymemcache.client.base import Client; "
        f"print(Client({socket!r}).stats()[b'curr_items'])"
    )
    return shlex.join([f"{venv}/bin/python", "-c", program])


@pytest.mark.nodes("rucio")
def test_rucio_caches_in_memcached_on_a_unix_socket_only(testbed, host):
    """Rucio's lookups are cached (without a reachable memcached it caches nothing), and the
    cache is no network service: one socket, for memcache's group (rucio) only."""
    assert_service_running(host, "memcached")
    cache_socket = testbed.value("rucio_cache_socket")
    socket = host.file(cache_socket)
    assert socket.is_socket
    assert (socket.user, socket.group, socket.mode) == ("memcache", "memcache", 0o660)
    assert "memcache" in host.user("rucio").groups
    # memcached's command line: `-s` turns its network listeners off, and nothing names one.
    pid = host.check_output("systemctl show -p MainPID --value memcached")
    arguments = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    assert arguments[arguments.index("-s") + 1] == cache_socket, arguments
    assert not {"-l", "--listen", "-p", "--port", "-U", "--udp-port"} & set(arguments), arguments
    assert not host.socket("tcp://11211").is_listening  # memcached's port by default
    # The daemons look up settings and storage elements every round: entries appear.
    items = cache_items(testbed.value("rucio_venv"), cache_socket)
    assert wait_for(lambda: int(host.check_output(items)) > 0, timeout=30), (
        "Rucio left nothing in its cache"
    )


@pytest.mark.nodes("rucio")
@pytest.mark.parametrize("daemon", DAEMONS)
def test_rucio_daemon_running(testbed, host, daemon):
    """Each Rucio daemon runs as its own systemd service, trusting the testbed's CA file and
    the grid's CA folder in place of the system's bundle (which OpenSSL 3 reads again for
    every TLS session a transfer or deletion opens, 0.1 s of CPU each)."""
    assert_service_running(host, f"rucio-{daemon}")
    pid = host.check_output(f"systemctl show -p MainPID --value rucio-{daemon}")
    # The running process's own environment, read as its user (root in a container may not
    # read another user's: no CAP_SYS_PTRACE).
    owner = host.check_output(f"ps -o user= -p {pid}")
    environ = host.check_output(f"runuser -u {owner} -- cat /proc/{pid}/environ | tr '\\0' '\\n'")
    settings = dict(entry.split("=", 1) for entry in environ.splitlines() if "=" in entry)
    trust = {name: settings.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    assert trust == {
        "SSL_CERT_FILE": testbed.value("rucio_ca_file"),
        "SSL_CERT_DIR": testbed.value("rucio_ca_dir"),
    }


def test_server_answers_over_tls_from_testbed_ca(testbed, client):
    """The client reaches the server over HTTPS, verifying it against the testbed CA."""
    server = testbed.group("rucio")[0]
    ca_file, port = testbed.value("testbed_ca_file"), testbed.value("rucio_port")
    out = client.run(f"curl -sS --fail --cacert {ca_file} https://{server}:{port}/ping")
    assert out.rc == 0, out.stderr
    assert '"version"' in out.stdout


def test_every_endpoint_is_an_rse_with_both_protocols(testbed, rucio):
    """Each XRootD endpoint is an RSE with root:// and davs:// on that host, marked as
    taking storage tokens (the reaper then deletes with one) relative to the export path.
    An endpoint storing on a shared filesystem has file:// as well, for reads in place."""
    rses = rucio("topology")["rses"]
    for node in testbed.group("xrootd"):
        assert rse_name(node) in rses, f"no RSE for endpoint {node}: {sorted(rses)}"
        rse = rses[rse_name(node)]
        in_place = testbed.on_shared_filesystem(testbed.node_value(node, "xrootd_storage_dir"))
        assert rse["schemes"] == (["davs", "file", "root"] if in_place else ["davs", "root"])
        assert set(rse["hosts"]) == ({node, "localhost"} if in_place else {node})
        assert rse["attributes"].get("oidc_support") is True, rse["attributes"]
        assert rse["attributes"].get("oidc_base_path") == testbed.value("xrootd_export_path")


def test_hpc_endpoint_is_marked_as_hpc_site(testbed, rucio):
    """The HPC site's endpoint carries hpc_site=True, so rules can target it by expression."""
    rses = rucio("topology")["rses"]
    flagged = {name for name, rse in rses.items() if rse["attributes"].get("hpc_site") is True}
    assert flagged == {rse_name(node) for node in testbed.group("hpc")}


def test_account_limit_from_definition(testbed, rucio):
    """The root account's quota on every RSE (each endpoint's, and any users' area's) is
    the one the definition sets."""
    topology = rucio("topology")
    wanted = testbed.plan["vars"]["rucio_account_limit_bytes"]
    assert {rse_name(node) for node in testbed.group("xrootd")} <= set(topology["rses"])
    assert topology["limits"] == dict.fromkeys(topology["rses"], wanted)


def test_distances_between_every_pair(testbed, rucio):
    """Every ordered pair of RSEs has a distance, so the conveyor can route between them."""
    distances = rucio("topology")["distances"]
    names = [rse_name(node) for node in testbed.group("xrootd")]
    for src in names:
        for dst in names:
            if src != dst:
                assert distances[src][dst] is not None, f"no distance {src} -> {dst}"


@pytest.fixture(scope="module")
def replicated(testbed, rucio, tokens):
    """A dataset uploaded to the first endpoint (over davs://, with a storage token for
    it) and a rule asking for two more copies, which Rucio's transfers make with tokens of
    their own."""
    first = testbed.group("xrootd")[0]
    source, *others = [rse_name(node) for node in testbed.group("xrootd")]
    dataset = rucio(
        "dataset",
        "testbed",
        f"ds-{uuid.uuid4().hex[:8]}",
        source,
        DATASET_FILES,
        FILE_BYTES,
        token_file=tokens.get(first, WRITE).token,
    )
    expression = "|".join(others)
    rule = rucio("rule-add", dataset["did"], 2, f"'{expression}'")["rule"]
    reached = wait_for(
        lambda: rucio("rule", rule)["state"] == "OK", timeout=REPLICATION_TIMEOUT_S, interval=3
    )
    return {**dataset, "rule": rule, "source": source, "targets": others, "ok": reached}


def test_rule_replicates_dataset_to_two_more_endpoints(replicated, rucio):
    """The rule reaches OK within the bound, with every file's lock OK."""
    state = rucio("rule", replicated["rule"])
    assert replicated["ok"], f"rule not OK after {REPLICATION_TIMEOUT_S}s: {state}"
    assert state["locks_ok_cnt"] == DATASET_FILES * 2


def test_every_replica_has_the_source_checksum(testbed, replicated, rucio, client, tokens):
    """Each replica's adler32, as each endpoint computes it, equals the checksum computed
    from the bytes before upload and the one in Rucio's catalogue."""
    assert replicated["ok"]
    found = rucio("replicas", replicated["did"])
    assert len(found) == DATASET_FILES
    for uploaded in replicated["files"]:
        entry = found[uploaded["name"]]
        assert entry["adler32"] == uploaded["adler32"]
        assert set(entry["replicas"]) == {replicated["source"], *replicated["targets"]}
        for rse, pfn in entry["replicas"].items():
            token = tokens.get(rse_node(testbed, rse), READ).token
            assert endpoint_adler32(client, pfn, token) == uploaded["adler32"], f"{rse}: {pfn}"


def test_deleting_the_rule_lets_the_reaper_remove_replicas(
    testbed, replicated, rucio, client, tokens
):
    """Once the rule is gone, the reaper deletes the extra replicas from the endpoints (over
    davs://, with a token it asks for itself)."""
    assert replicated["ok"]
    before = rucio("replicas", replicated["did"])
    extra = [
        pfn
        for entry in before.values()
        for rse, pfn in entry["replicas"].items()
        if rse in replicated["targets"]
    ]
    rucio("rule-delete", replicated["rule"])

    def gone() -> bool:
        now = rucio("replicas", replicated["did"])
        return all(set(entry["replicas"]) == {replicated["source"]} for entry in now.values())

    assert wait_for(gone, timeout=DELETION_TIMEOUT_S, interval=3), (
        f"replicas still listed: {rucio('replicas', replicated['did'])}"
    )
    for pfn in extra:
        host, path = pfn.removeprefix("root://").split("/", 1)
        token = tokens.get(host.split(":")[0], READ).token
        stat = client.run(f"BEARER_TOKEN_FILE={token} xrdfs root://{host} stat /{path.lstrip('/')}")
        assert stat.rc != 0 and "[3011]" in stat.stderr, f"{pfn}: {stat.stderr}"  # not found
