"""The token issuer: OpenID Connect discovery and keys over HTTPS, JWT access tokens signed
with the testbed's EC key for registered clients only, users from the directory, and no
built-in administrator."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from testbeds.checks.helpers import assert_service_running, write_private_file
from testbeds.checks.storage_tokens import issuer_url, storage_client

# A scope no client is given (glewlwyd matches scopes exactly).
NOT_GIVEN = "storage.modify:/never-granted"
# WLCG's audience every storage endpoint accepts.
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"


def client_login(testbed: Any) -> tuple[dict[str, Any], str]:
    """That client and its credentials as curl's user (name:secret)."""
    client = storage_client(testbed)
    secret = (testbed.secrets_dir / f"issuer-{client['name']}-password").read_text().strip()
    return client, f"{client['name']}:{secret}"


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture(scope="module")
def client_node(testbed):
    """Where users work (the login node, or the data client), which asks the issuer as any
    client on the testbed would."""
    nodes = testbed.group("slurm_login") or testbed.group("data_client")
    return testbed.host(nodes[0])


@pytest.fixture(scope="module")
def fetch(testbed, client_node):
    """GET or POST to the issuer from the client node, the certificate checked against the
    testbed CA; secrets go in a 0600 curl config file, never on a command line."""
    ca = testbed.value("token_issuer_ca_file")
    workdir = client_node.check_output("mktemp -d")

    def run(
        path: str,
        form: dict[str, str] | None = None,
        user: str = "",
        body: str = "",
        header: str = "",
    ) -> Any:
        # path-as-is: a "../" in a path reaches the server as written
        lines = [f'url = "{issuer_url(testbed).rsplit("/api/", 1)[0]}{path}"', "path-as-is"]
        if user:
            lines.append(f'user = "{user}"')
        if header:
            lines.append(f'header = "{header}"')
        for key, value in (form or {}).items():
            lines.append(f'data-urlencode = "{key}={value}"')
        if body:
            write_private_file(client_node, f"{workdir}/body", body)
            lines += [f'data = "@{workdir}/body"', 'header = "Content-Type: application/json"']
        config = "\n".join(lines)
        write_private_file(client_node, f"{workdir}/curl.conf", config)
        out = client_node.run(
            f"curl -sS --cacert {ca} -K {workdir}/curl.conf -w '\\n%{{http_code}}'"
        )
        client_node.run(f"rm -f {workdir}/curl.conf {workdir}/body")
        text, _, status = out.stdout.rpartition("\n")
        return int(status or 0), text

    yield run
    client_node.run(f"rm -rf {workdir}")


def jwks_key(fetch) -> tuple[str, ec.EllipticCurvePublicKey]:
    status, text = fetch("/api/oidc/jwks")
    assert status == 200, text
    keys = json.loads(text)["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256", keys
    assert "d" not in keys[0], "the JWKS publishes the private key"
    x, y = (int.from_bytes(b64decode(keys[0][k]), "big") for k in ("x", "y"))
    return keys[0]["kid"], ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def verified_claims(token: str, kid: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64decode(header_b64))
    assert (header["alg"], header["kid"]) == ("ES256", kid), header
    raw = b64decode(signature_b64)
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    key.verify(signature, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    return dict(json.loads(b64decode(payload_b64)))


@pytest.mark.nodes("token_issuer")
def test_issuer_runs_on_https_only(host, node, testbed):
    """glewlwyd runs and answers only TLS on its port."""
    assert_service_running(host, "glewlwyd")
    port = testbed.value("token_issuer_port")
    plain = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{node}:{port}/api/oidc/jwks")
    assert plain.stdout.strip() in ("000", ""), plain.stdout


def test_discovery_names_the_https_issuer_and_its_ec_keys(testbed, fetch):
    status, text = fetch("/api/oidc/.well-known/openid-configuration")
    assert status == 200, text
    discovery = json.loads(text)
    assert discovery["issuer"] == issuer_url(testbed)
    assert discovery["jwks_uri"].startswith("https://")
    jwks_key(fetch)


def test_issuer_serves_its_login_page_and_nothing_outside_it(fetch):
    """Browsers sent to the issuer to log in (the hub's OAuth login) get its login page and
    the page's settings over HTTPS; a path out of the page's folder gets nothing."""
    status, text = fetch("/login.html")
    assert status == 200 and "Glewlwyd" in text, (status, text[:200])
    status, text = fetch("/config.json")
    assert status == 200, text[:200]
    assert json.loads(text)["GlewlwydUrl"] == "./"
    status, text = fetch("/../../../etc/passwd")
    assert status == 404 and "root:" not in text, (status, text[:200])


# What the login page loads besides itself: without them it stays at "Loading..." (its
# script needs jQuery).
LOGIN_PAGE_ASSETS = (
    "js/jquery.min.js",
    "js/popper.min.js",
    "js/bootstrap.min.js",
    "css/bootstrap.min.css",
    "css/fork-awesome.min.css",
    "fonts/forkawesome-webfont.woff2",
    "login.js",
)


@pytest.mark.parametrize("asset", LOGIN_PAGE_ASSETS)
def test_the_login_pages_scripts_styles_and_fonts_are_served(testbed, client_node, asset):
    """Each script, style sheet and font the login page loads answers 200 with content."""
    url = f"{issuer_url(testbed).rsplit('/api/', 1)[0]}/{asset}"
    out = client_node.run(
        f"curl -sS -o /dev/null -w '%{{http_code}} %{{size_download}}' "
        f"--cacert {testbed.value('token_issuer_ca_file')} {url}"
    )
    status, size = (int(x) for x in out.stdout.split())
    assert (status, size > 100) == (200, True), (asset, out.stdout, out.stderr)


def test_registered_client_gets_a_signed_scoped_token(testbed, fetch):
    """Client credentials with the client's generated secret give an ES256 JWT the JWKS
    verifies, with the issuer, the asked scope only, the WLCG profile's version (storage
    scopes) and the configured lifetime; a scope the client was not given is left out, and
    one it asks for alone is refused."""
    client, login = client_login(testbed)
    given = client["scopes"][0]
    asked = {"grant_type": "client_credentials", "scope": f"{given} {NOT_GIVEN}"}
    status, text = fetch("/api/oidc/token", form=asked, user=login)
    assert status == 200, text
    kid, key = jwks_key(fetch)
    claims = verified_claims(json.loads(text)["access_token"], kid, key)
    assert claims["iss"] == issuer_url(testbed)
    assert claims["scope"] == given, claims
    assert claims["wlcg.ver"] == "1.0", claims
    assert claims["exp"] - claims["iat"] == testbed.value("token_issuer_access_token_seconds")
    assert abs(claims["iat"] - time.time()) < 120
    forged = json.loads(text)["access_token"][:-4] + "AAAA"
    with pytest.raises(InvalidSignature):
        verified_claims(forged, kid, key)
    status, text = fetch("/api/oidc/token", form={**asked, "scope": NOT_GIVEN}, user=login)
    assert status == 400 and "scope_invalid" in text, (status, text)


def test_token_is_for_the_audience_asked_among_the_clients_own(testbed, fetch):
    """Asked with `resource` (RFC 8707) for each of the client's registered audiences, the
    token's audience is that and nothing else, as a storage endpoint checks it; an audience
    not registered for the client gets no token."""
    client, login = client_login(testbed)
    asked = {"grant_type": "client_credentials", "scope": client["scopes"][0]}
    kid, key = jwks_key(fetch)
    for audience in client["audiences"]:
        status, text = fetch("/api/oidc/token", form={**asked, "resource": audience}, user=login)
        assert status == 200, text
        claims = verified_claims(json.loads(text)["access_token"], kid, key)
        assert (claims["aud"], claims["wlcg.ver"]) == (audience, "1.0"), claims
    status, text = fetch(
        "/api/oidc/token",
        form={**asked, "resource": "https://elsewhere.invalid/storage"},
        user=login,
    )
    assert status == 400 and "invalid_target" in text, (status, text)


def test_no_client_gets_a_token_every_storage_endpoint_takes(testbed, fetch):
    """No client of the definition is registered for WLCG's any-audience, and each client
    with client credentials that asks for it gets no token: tokens name one endpoint."""
    clients = [
        c for c in testbed.value("token_issuer_clients") if "client_credentials" in c["grants"]
    ]
    assert clients, "the definition has no client-credentials client to ask with"
    answers = {}
    for client in clients:
        assert ANY_AUDIENCE not in client.get("audiences", []), client
        secret = (testbed.secrets_dir / f"issuer-{client['name']}-password").read_text().strip()
        asked = {
            "grant_type": "client_credentials",
            "scope": client["scopes"][0],
            "resource": ANY_AUDIENCE,
        }
        status, text = fetch("/api/oidc/token", form=asked, user=f"{client['name']}:{secret}")
        answers[client["name"]] = (status, "invalid_target" in text)
    assert set(answers.values()) == {(400, True)}, answers


def test_wrong_secret_unknown_client_and_no_secret_are_refused(testbed, fetch):
    client = storage_client(testbed)
    asked = {"grant_type": "client_credentials", "scope": client["scopes"][0]}
    wrong = f"{client['name']}:wrong-secret-0123456789"
    for user in (wrong, "nobody:whatever-0123456789", ""):
        status, text = fetch("/api/oidc/token", form=asked, user=user)
        assert status in (401, 403) and "access_token" not in text, (user.split(":")[0], status)


@pytest.mark.nodes("token_issuer")
def test_the_administration_api_lets_in_only_the_seeds_key(host, testbed, fetch):
    """glewlwyd's administration API (users, clients, scopes) refuses a request with no
    credentials and one with a wrong key of the right length (32 characters); the one key
    it takes is root's alone on the issuer's node (the directory tool registers an added
    account's scopes with it, which the directory checks exercise)."""
    for header in ("", "Authorization: token " + "0" * 32):
        status, text = fetch("/api/user/", header=header)
        assert status == 401 and "username" not in text, (header[:20], status)
    key = host.file("/etc/glewlwyd/admin-api-key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)


def test_directory_users_authenticate_and_there_is_no_admin(testbed, fetch):
    """The research user's directory password opens a session at the issuer; a wrong one
    does not, and the package's built-in administrator (admin/password) is gone."""
    user = testbed.research_user
    password = (testbed.secrets_dir / f"user-{user}-password").read_text().strip()
    status, _ = fetch("/api/auth/", body=json.dumps({"username": user, "password": password}))
    assert status == 200
    status, _ = fetch("/api/auth/", body=json.dumps({"username": user, "password": "wrong-1"}))
    assert status == 401
    status, _ = fetch("/api/auth/", body=json.dumps({"username": "admin", "password": "password"}))
    assert status == 401
