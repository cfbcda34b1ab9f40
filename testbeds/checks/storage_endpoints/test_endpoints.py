"""Every endpoint serves root:// (ztn) and davs:// with a certificate from the testbed CA,
to holders of a storage token from the testbed's issuer only: the token's audience must be
the endpoint, its scopes must cover the operation and the path, and its signature must be
the issuer's. Third-party copy over davs:// between every pair of endpoints, each end with
its own token, keeps the adler32 checksum."""

from __future__ import annotations

import itertools
import shlex
import uuid
import zlib
from typing import Any

import pytest

from testbeds.checks.helpers import (
    assert_service_running,
    endpoint_adler32,
    wait_for,
    write_private_file,
)
from testbeds.checks.storage_tokens import READ_SCOPES as READ
from testbeds.checks.storage_tokens import WRITE_SCOPES as WRITE
from testbeds.checks.storage_tokens import StorageTokens

PAYLOAD_BYTES = 3 * 1024 * 1024 + 17  # not a multiple of any block size


def endpoints(testbed) -> list[str]:
    return testbed.group("xrootd")


@pytest.fixture(scope="module")
def client(testbed):
    return testbed.host(testbed.group("data_client")[0])


@pytest.fixture(scope="module")
def tokens(testbed, client):
    """Tokens of the definition's storage client (the whole namespace), on the client."""
    found = StorageTokens(testbed, client)
    yield found
    found.close()


@pytest.fixture(scope="module")
def payload(client):
    """A random file on the client, and its adler32 computed here, independently of XRootD."""
    path = f"/tmp/tpc-payload-{uuid.uuid4().hex[:8]}"
    client.check_output(f"head -c {PAYLOAD_BYTES} /dev/urandom > {path}")
    data = client.file(path).content
    yield path, f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    client.run(f"rm -f {path}")


class Endpoint:
    """Requests to one endpoint from the client, over either protocol, with a token file
    (or none)."""

    def __init__(self, testbed, client, node: str) -> None:
        self.client = client
        self.node = node
        self.root = f"root://{node}:{testbed.value('xrootd_root_port')}/"
        self.https = f"https://{node}:{testbed.value('xrootd_https_port')}"
        self.ca = testbed.value("testbed_ca_file")
        self.export = testbed.value("xrootd_export_path")

    def name(self, stem: str) -> str:
        return f"{self.export}/{stem}-{uuid.uuid4().hex[:8]}"

    def put(self, scheme: str, local: str, name: str, token: str | None) -> tuple[bool, str]:
        """Upload; whether it was written, and what the client said."""
        if scheme == "root":
            return self._xrdcp(local, f"{self.root}{name}", token)
        return self._curl(f"-o /dev/null -T {local} {self.https}{name}", token)

    def get(self, scheme: str, name: str, local: str, token: str | None) -> tuple[bool, str]:
        """Download; whether it was read, and what the client said."""
        if scheme == "root":
            return self._xrdcp(f"{self.root}{name}", local, token)
        return self._curl(f"-o {local} {self.https}{name}", token)

    def _xrdcp(self, source: str, target: str, token: str | None) -> tuple[bool, str]:
        env = f"BEARER_TOKEN_FILE={token} " if token else ""
        out = self.client.run(f"{env}xrdcp -f {source} {target}")
        return out.rc == 0, out.stdout + out.stderr

    def _curl(self, request: str, token: str | None) -> tuple[bool, str]:
        header = f"-H @{token}.header " if token else ""
        out = self.client.run(f"curl -sS -w '%{{http_code}}' --cacert {self.ca} {header}{request}")
        return out.stdout.strip()[-3:] in ("200", "201", "204"), out.stdout + out.stderr

    def pull(self, source: str, name: str, headers: list[str], timeout_s: int = 0) -> Any:
        """Ask this endpoint to copy ``source`` (a URL) to ``name`` (HTTP COPY, pull mode),
        with each of ``headers`` (files of header lines); curl's result."""
        limit = f"timeout {timeout_s} " if timeout_s else ""
        sent = " ".join(f"-H @{header}" for header in headers)
        return self.client.run(
            f"{limit}curl -sS --fail-with-body --cacert {self.ca} -X COPY {sent} "
            f"-H {shlex.quote('Source: ' + source)} {self.https}{name}"
        )

    def xrdfs(self, command: str, name: str, token: str) -> Any:
        """An ``xrdfs`` command on ``name`` over root://, with ``token``; its result."""
        return self.client.run(f"BEARER_TOKEN_FILE={token} xrdfs {self.root} {command} {name}")

    def holds_data(self, name: str, token: str) -> bool:
        """Whether ``name`` exists with content (XRootD creates a copy's target before it
        pulls, so a refused pull leaves it empty)."""
        out = self.xrdfs("stat", name, token)
        return out.rc == 0 and "Size:   0" not in out.stdout

    def exists(self, name: str, token: str) -> bool:
        return self.xrdfs("stat", name, token).rc == 0

    def remove(self, name: str, token: str) -> None:
        self.xrdfs("rm", name, token)


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
def test_upload_and_read_back_with_a_token(testbed, client, tokens, payload, node, scheme):
    """A file uploaded over each protocol with a token for the endpoint reads back byte for
    byte with a read-only one."""
    path, _ = payload
    endpoint = Endpoint(testbed, client, node)
    name = endpoint.name(f"rw-{scheme}")
    written, said = endpoint.put(scheme, path, name, tokens.get(node, WRITE).token)
    assert written, said
    read, said = endpoint.get(scheme, name, f"{path}.back", tokens.get(node, READ).token)
    assert read, said
    same = client.run(f"cmp {path} {path}.back")
    client.run(f"rm -f {path}.back")
    endpoint.remove(name, tokens.get(node, WRITE).token)
    assert same.rc == 0, same.stdout


@pytest.mark.parametrize("scheme", ["root", "davs"])
def test_requests_without_a_fitting_token_are_refused(testbed, client, tokens, payload, scheme):
    """No token, a read-only token, a token for another endpoint, a tampered token: each
    write is refused and nothing is written; reading without a token is refused too."""
    path, _ = payload
    first, second = endpoints(testbed)[:2]
    endpoint = Endpoint(testbed, client, first)
    writer = tokens.get(first, WRITE).token
    kept = endpoint.name("kept")
    assert endpoint.put(scheme, path, kept, writer)[0]
    tampered = f"{writer}-tampered"
    # The same claims with the signature's last bytes changed.
    client.run(
        f'python3 -c "import os,sys; os.umask(0o077); t=open(sys.argv[1]).read();'
        f" t=t[:-6]+('AAAAAA' if not t.endswith('AAAAAA') else 'BBBBBB');"
        f" open(sys.argv[2],'w').write(t); open(sys.argv[2]+'.header','w')"
        f".write('Authorization: Bearer '+t+'\\n')\" {writer} {tampered}"
    )
    refused = {
        "no token": None,
        "read-only token": tokens.get(first, READ).token,
        "token for another endpoint": tokens.get(second, WRITE).token,
        "tampered token": tampered,
    }
    written = {}
    for case, token in refused.items():
        name = endpoint.name("refused")
        ok, said = endpoint.put(scheme, path, name, token)
        written[case] = (ok or endpoint.exists(name, writer), said[-200:])
        endpoint.remove(name, writer)
    read_anonymously = endpoint.get(scheme, kept, f"{path}.anon", None)[0]
    endpoint.remove(kept, writer)
    client.run(f"rm -f {path}.anon {tampered} {tampered}.header")
    assert not any(ok for ok, _ in written.values()), written
    assert not read_anonymously, "an anonymous read succeeded"


def test_a_token_for_one_path_cannot_write_another(testbed, client, payload):
    """Rucio's client has scopes on its own area only: its token writes there and not
    elsewhere in the namespace."""
    rucio_client = testbed.value("rucio_token_client")
    path, _ = payload
    node = endpoints(testbed)[0]
    endpoint = Endpoint(testbed, client, node)
    scoped = StorageTokens(testbed, client, rucio_client)
    # The client's area, as the definition gives it (storage.read:/rucio).
    area = scoped.client["scopes"][0].split(":", 1)[1]
    assert area != "/", f"{rucio_client} may write the whole namespace"
    token = scoped.get(node, f"storage.read:{area} storage.create:{area} storage.modify:{area}")
    inside = f"{endpoint.export}{area}/check-{uuid.uuid4().hex[:8]}"
    outside = endpoint.name("outside-area")
    results = {
        target: endpoint.put("davs", path, target, token.token) for target in (inside, outside)
    }
    endpoint.remove(inside, token.token)
    scoped.close()
    assert results[inside][0], results[inside][1]
    assert not results[outside][0], f"a token for {area} wrote {outside}"


PAIRS = list(itertools.permutations(range(3), 2))


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}to{b}" for a, b in PAIRS])
def test_third_party_copy_with_tokens_keeps_checksum(testbed, client, tokens, payload, pair):
    """HTTP TPC from each endpoint to each other one (COPY, pulled by the destination with
    the source's read token handed on in TransferHeaderAuthorization) succeeds and the
    adler32 matches the source; without the source's token the pull is refused."""
    names = endpoints(testbed)
    src, dst = (Endpoint(testbed, client, names[index]) for index in pair)
    path, expected = payload
    name = src.name("tpc")
    src_token, dst_token = tokens.get(src.node, WRITE), tokens.get(dst.node, WRITE)
    assert src.put("root", path, name, src_token.token)[0]
    source_token = tokens.get(src.node, READ).source_header
    copy = dst.pull(f"{src.https}{name}", name, [dst_token.header, source_token])
    assert copy.rc == 0 and "failure" not in copy.stdout.lower(), copy.stdout + copy.stderr
    assert endpoint_adler32(client, f"{src.root}{name}", src_token.token) == expected
    assert endpoint_adler32(client, f"{dst.root}{name}", dst_token.token) == expected
    dst.remove(name, dst_token.token)
    unauthorised = dst.pull(f"{src.https}{name}", name, [dst_token.header])
    written = dst.holds_data(name, dst_token.token)
    src.remove(name, src_token.token)
    dst.remove(name, dst_token.token)
    refused = unauthorised.rc != 0 or "failure" in unauthorised.stdout.lower()
    assert refused and not written, unauthorised.stdout


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


def test_https_third_party_copy_from_a_foreign_host_is_refused(testbed, client, tokens):
    """Over HTTPS, an endpoint asked (with a valid token) to pull from a host that is not
    one of the testbed's endpoints refuses: the copy fails and the endpoint never connects
    to that host."""
    dst = endpoints(testbed)[0]
    endpoint = Endpoint(testbed, client, dst)
    token = tokens.get(dst, WRITE)
    foreign = testbed.group("data_client")[0]
    port = 18443
    log = f"/tmp/foreign-{uuid.uuid4().hex[:8]}"
    client.run(f"nohup python3 -c {shlex.quote(LISTENER)} {port} 40 {log} >/dev/null 2>&1 &")
    assert wait_for(lambda: client.run(f"test -f {log}").rc == 0, timeout=10)
    name = endpoint.name("foreign")
    no_credential = f"{log}.credential"
    client.run(f"echo 'Credential: none' > {no_credential}")
    copy = endpoint.pull(
        f"https://{foreign}:{port}/x", name, [token.header, no_credential], timeout_s=30
    )
    contacted = client.run(f"cat {log}").stdout.split()
    # Two commands: pkill must not find its own shell, whose command line would name the log.
    client.run("pkill -f '[f]oreign-'")
    client.run(f"rm -f {log} {no_credential}")
    # HTTP TPC may answer 201 and report the transfer's failure in the body.
    refused = copy.rc != 0 or "failure" in copy.stdout.lower()
    assert refused, f"the copy from {foreign} succeeded: {copy.stdout}"
    assert address_of(client, dst) not in contacted, f"{dst} connected to {foreign}"
    written = endpoint.holds_data(name, token.token)
    endpoint.remove(name, token.token)
    assert not written, f"{dst} wrote {name} from {foreign}"


def test_hpc_site_endpoint_present(testbed):
    """One endpoint is the HPC site's data-transfer node."""
    assert testbed.group("hpc"), "no endpoint in the hpc node group"
    assert set(testbed.group("hpc")) <= set(endpoints(testbed))


# Run on the issuer's node: re-signs the claims on stdin (a real token's header and
# payload, no signature) with the issuer's own key, moved argv[2] seconds into the past.
RESIGN_EXPIRED = r"""
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def unb64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

header_b64, payload_b64 = sys.stdin.read().strip().split(".")
claims = json.loads(unb64(payload_b64))
shift = int(time.time()) - int(sys.argv[2]) - claims["iat"]
for name in ("iat", "nbf", "exp"):
    if name in claims:
        claims[name] += shift
signing_input = header_b64 + "." + b64(json.dumps(claims).encode())
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
print(signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
"""
# Where the token_issuer role keeps the issuer's signing key.
ISSUER_SIGNING_KEY = "/etc/glewlwyd/signing-key.pem"


@pytest.mark.parametrize("scheme", ["root", "davs"])
def test_an_expired_token_is_refused(testbed, client, tokens, payload, scheme):
    """A token signed with the issuer's own key, with the claims of a valid one but expired
    an hour ago, writes nothing; the same claims re-signed unexpired write (so only the
    time differs)."""
    issuer = testbed.host(testbed.group("token_issuer")[0])
    node = endpoints(testbed)[0]
    endpoint = Endpoint(testbed, client, node)
    valid = tokens.get(node, WRITE)
    unsigned = client.check_output(f"cut -d. -f1,2 {valid.token}")
    script = client.check_output("mktemp -u /tmp/resign-XXXXXX.py")
    issuer.run(f"cat > {script} <<'EOF'\n{RESIGN_EXPIRED}\nEOF")

    def resigned(age_s: int) -> str:
        out = issuer.run(
            f"echo {shlex.quote(unsigned)} | python3 {script} {ISSUER_SIGNING_KEY} {age_s}"
        )
        assert out.rc == 0, out.stderr[-500:]
        target = f"{valid.token}-{age_s}"
        token = out.stdout.strip()
        write_private_file(client, target, token)
        write_private_file(client, f"{target}.header", f"Authorization: Bearer {token}\n")
        return target

    expired_file, fresh_file = resigned(3600), resigned(0)
    issuer.run(f"rm -f {script}")
    path, _ = payload
    name = endpoint.name("expired")
    ok, said = endpoint.put(scheme, path, name, expired_file)
    written = ok or endpoint.exists(name, valid.token)
    endpoint.remove(name, valid.token)
    fresh_wrote = endpoint.put(scheme, path, name, fresh_file)
    endpoint.remove(name, valid.token)
    client.run(f"rm -f {expired_file} {expired_file}.header {fresh_file} {fresh_file}.header")
    assert not written, f"an expired token wrote {name}: {said[-300:]}"
    assert fresh_wrote[0], f"the same claims re-signed unexpired did not write: {fresh_wrote[1]}"
