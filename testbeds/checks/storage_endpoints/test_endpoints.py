"""Every endpoint serves root:// and davs:// with a certificate from the testbed CA, and
third-party copy between every pair of endpoints keeps the adler32 checksum."""

from __future__ import annotations

import itertools
import shlex
import uuid
import zlib

import pytest

from testbeds.checks.helpers import assert_service_running, endpoint_adler32, wait_for

PAYLOAD_BYTES = 3 * 1024 * 1024 + 17  # not a multiple of any block size


def endpoints(testbed) -> list[str]:
    return testbed.group("xrootd")


@pytest.fixture(scope="module")
def client(testbed):
    return testbed.host(testbed.group("data_client")[0])


@pytest.fixture(scope="module")
def payload(client):
    """A random file on the client, and its adler32 computed here, independently of XRootD."""
    path = f"/tmp/tpc-payload-{uuid.uuid4().hex[:8]}"
    client.check_output(f"head -c {PAYLOAD_BYTES} /dev/urandom > {path}")
    data = client.file(path).content
    yield path, f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    client.run(f"rm -f {path}")


@pytest.mark.nodes("xrootd")
def test_xrootd_running(host):
    """The endpoint's daemon is active and enabled."""
    assert_service_running(host, "xrootd@testbed")


@pytest.mark.nodes("xrootd")
def test_certificate_signed_by_testbed_ca(testbed, client, node):
    """The endpoint's TLS certificate verifies against the testbed CA, for its own name."""
    https, ca_file = testbed.value("xrootd_https_port"), testbed.value("testbed_ca_file")
    out = client.run(
        f"echo | openssl s_client -connect {node}:{https} -servername {node} "
        f"-verify_hostname {node} -CAfile {ca_file} -verify_return_error"
    )
    assert out.rc == 0, out.stderr[-2000:]
    assert "Verify return code: 0 (ok)" in out.stdout
    issuer = client.check_output(
        f"echo | openssl s_client -connect {node}:{testbed.value('xrootd_https_port')} 2>/dev/null "
        "| openssl x509 -noout -issuer"
    )
    assert "wp5-testbeds CA" in issuer


@pytest.mark.nodes("xrootd")
@pytest.mark.parametrize("scheme", ["root", "davs"])
def test_upload_and_read_back(testbed, client, payload, node, scheme):
    """A file uploaded over each protocol reads back byte for byte."""
    path, _ = payload
    base = (
        f"root://{node}:{testbed.value('xrootd_root_port')}/"
        if scheme == "root"
        else f"davs://{node}:{testbed.value('xrootd_https_port')}"
    )
    name = f"{testbed.value('xrootd_export_path')}/rw-{scheme}-{uuid.uuid4().hex[:8]}"
    put = client.run(f"GFAL_PYTHONBIN=/usr/bin/python3 gfal-copy -f file://{path} {base}{name}")
    assert put.rc == 0, put.stdout + put.stderr
    get = client.run(
        f"GFAL_PYTHONBIN=/usr/bin/python3 gfal-copy -f {base}{name} file://{path}.back "
        f"&& cmp {path} {path}.back"
    )
    assert get.rc == 0, get.stdout + get.stderr
    client.run(f"rm -f {path}.back; xrdfs root://{node} rm {name}")


PAIRS = list(itertools.permutations(range(3), 2))


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}to{b}" for a, b in PAIRS])
@pytest.mark.parametrize("protocol", ["root", "davs"])
def test_third_party_copy_keeps_checksum(testbed, client, payload, protocol, pair):
    """TPC from each endpoint to each other one succeeds, over root:// (xrdcp --tpc only) and
    over davs:// (HTTP COPY, pulled by the destination); adler32 matches the source."""
    names = endpoints(testbed)
    src, dst = names[pair[0]], names[pair[1]]
    path, expected = payload
    name = f"{testbed.value('xrootd_export_path')}/tpc-{protocol}-{uuid.uuid4().hex[:8]}"
    seed = client.run(f"xrdcp -f {path} root://{src}:{testbed.value('xrootd_root_port')}/{name}")
    assert seed.rc == 0, seed.stderr
    if protocol == "root":
        copy = client.run(
            f"xrdcp -f --tpc only root://{src}:{testbed.value('xrootd_root_port')}/{name} root://{dst}:{testbed.value('xrootd_root_port')}/{name}"
        )
    else:
        copy = client.run(
            "curl -sS --fail-with-body -X COPY -H 'Credential: none' "
            f"-H 'Source: https://{src}:{testbed.value('xrootd_https_port')}{name}' https://{dst}:{testbed.value('xrootd_https_port')}{name}"
        )
    assert copy.rc == 0, copy.stdout + copy.stderr
    assert endpoint_adler32(client, f"root://{src}/{name}") == expected
    assert endpoint_adler32(client, f"root://{dst}/{name}") == expected
    client.run(f"xrdfs root://{src} rm {name}; xrdfs root://{dst} rm {name}")


# Listens on a port of the client for a while and prints every peer that connected: the
# stand-in for a foreign host an endpoint is asked to pull from.
LISTENER = r"""
import socket, sys, time
server = socket.create_server(("0.0.0.0", int(sys.argv[1])), reuse_port=True)
server.settimeout(1)
end = time.time() + float(sys.argv[2])
with open(sys.argv[3], "w") as log:
    while time.time() < end:
        try:
            peer, address = server.accept()
        except TimeoutError:
            continue
        log.write(address[0] + "\n")
        log.flush()
        peer.close()
"""


def address_of(client, name: str) -> str:
    return client.check_output(f"getent ahostsv4 {name}").split()[0]


def test_root_third_party_copy_from_an_unlisted_source_is_refused(testbed, client, payload):
    """Over root://, an endpoint pulls only from sources named as the testbed's endpoints:
    the same endpoint named by its IP address instead is refused, and nothing is written."""
    src, dst = endpoints(testbed)[1], endpoints(testbed)[0]
    path, _ = payload
    name = f"{testbed.value('xrootd_export_path')}/unlisted-{uuid.uuid4().hex[:8]}"
    port = testbed.value("xrootd_root_port")
    assert client.run(f"xrdcp -f {path} root://{src}:{port}/{name}").rc == 0
    copy = client.run(
        f"timeout 60 xrdcp -f --tpc only root://{address_of(client, src)}:{port}/{name} "
        f"root://{dst}:{port}/{name}"
    )
    written = client.run(f"xrdfs root://{dst} stat {name}").rc == 0
    client.run(f"xrdfs root://{src} rm {name}; xrdfs root://{dst} rm {name}")
    assert copy.rc != 0, "a third-party copy from an unlisted source was made"
    assert not written


def test_https_third_party_copy_from_a_foreign_host_is_refused(testbed, client):
    """Over HTTPS, an endpoint asked to pull from a host that is not one of the testbed's
    endpoints refuses: the copy fails and the endpoint never connects to that host."""
    dst = endpoints(testbed)[0]
    foreign = testbed.group("data_client")[0]
    port = 18443
    log = f"/tmp/foreign-{uuid.uuid4().hex[:8]}"
    client.run(f"nohup python3 -c {shlex.quote(LISTENER)} {port} 40 {log} >/dev/null 2>&1 &")
    assert wait_for(lambda: client.run(f"test -f {log}").rc == 0, timeout=10)
    name = f"{testbed.value('xrootd_export_path')}/foreign-{uuid.uuid4().hex[:8]}"
    copy = client.run(
        "timeout 30 curl -sS --fail-with-body -X COPY -H 'Credential: none' "
        f"-H 'Source: https://{foreign}:{port}/x' "
        f"https://{dst}:{testbed.value('xrootd_https_port')}{name}"
    )
    contacted = client.run(f"cat {log}").stdout.split()
    client.run(f"pkill -f '[f]oreign-' ; rm -f {log}")
    # HTTP TPC may answer 201 and report the transfer's failure in the body.
    refused = copy.rc != 0 or "failure" in copy.stdout.lower()
    assert refused, f"the copy from {foreign} succeeded: {copy.stdout}"
    assert address_of(client, dst) not in contacted, f"{dst} connected to {foreign}"
    # XRootD creates the destination before it pulls; a refused pull leaves it empty.
    stat = client.run(f"xrdfs root://{dst} stat {name}")
    client.run(f"xrdfs root://{dst} rm {name}")
    assert stat.rc != 0 or "Size:   0" in stat.stdout, stat.stdout


def test_hpc_site_endpoint_present(testbed):
    """One endpoint is the HPC site's data-transfer node."""
    assert testbed.group("hpc"), "no endpoint in the hpc node group"
    assert set(testbed.group("hpc")) <= set(endpoints(testbed))
