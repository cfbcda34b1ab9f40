"""A directory user's own storage token: a user added to the directory after `up` gets a
token on a terminal with the device flow (RFC 8628: the terminal asks, the user logs in at
the issuer with the directory password and approves), and writes to an endpoint with it
within the scopes the directory gives every account; once removed from the directory,
the user gets no token any more, not even with a refresh token."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from testbeds.checks.directory_accounts import NewUser
from testbeds.checks.helpers import write_private_file
from testbeds.checks.storage_tokens import (
    TokenFiles,
    endpoint_audience,
    issuer_url,
    save_token,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# What the user asks for: read anywhere, write in the users' area (the account's scopes).
USER_SCOPES = "storage.read:/ storage.create:/users"


def device_client(testbed: Any) -> dict[str, Any]:
    """The definition's client with the device grant."""
    for client in testbed.value("token_issuer_clients"):
        if "device_code" in client["grants"]:
            return dict(client)
    raise LookupError("the definition has no client with grant device_code")


class Terminal:
    """Requests to the issuer from the client node, as a user's terminal and browser make
    them; every secret (client secret, password, device code) goes in 0600 files, never on
    a command line, and the token from the issuer's answer straight into 0600 files."""

    def __init__(self, testbed: Any, host: Any) -> None:
        self.testbed = testbed
        self.host = host
        self.issuer = issuer_url(testbed)
        self.base = self.issuer.rsplit("/api/", 1)[0]
        self.ca = testbed.value("testbed_ca_file")
        self.client = device_client(testbed)
        secret_file = testbed.secrets_dir / f"issuer-{self.client['name']}-password"
        self.client_login = f"{self.client['name']}:{secret_file.read_text().strip()}"
        self.workdir = host.check_output("mktemp -d")

    def curl(self, lines: list[str], body: str = "") -> tuple[int, str, str]:
        """One request from a curl config; its status, redirect and body."""
        name = f"{self.workdir}/{uuid.uuid4().hex[:8]}"
        if body:
            write_private_file(self.host, f"{name}.body", body)
            lines = [*lines, f'data = "@{name}.body"', 'header = "Content-Type: application/json"']
        write_private_file(self.host, f"{name}.curl", "\n".join(lines))
        out = self.host.run(
            f"curl -sS --cacert {self.ca} -K {name}.curl -w '\\n%{{http_code}} %{{redirect_url}}'"
        )
        self.host.run(f"rm -f {name}.curl {name}.body")
        text, _, tail = out.stdout.rpartition("\n")
        status, _, redirect = tail.partition(" ")
        return int(status or 0), redirect, text

    def device_authorization(self, audience: str) -> dict[str, Any]:
        """The terminal asks: a device code (kept in a file) and the code the user enters."""
        status, _, text = self.curl(
            [
                f'url = "{self.issuer}/device_authorization"',
                f'user = "{self.client_login}"',
                f'data-urlencode = "scope={USER_SCOPES}"',
                f'data-urlencode = "resource={audience}"',
            ]
        )
        assert status == 200, (status, text[:300])
        answer = json.loads(text)
        device_file = f"{self.workdir}/device-{uuid.uuid4().hex[:8]}"
        write_private_file(self.host, device_file, answer["device_code"])
        return {"user_code": answer["user_code"], "device_file": device_file}

    def approve(self, user: NewUser, password: str, user_code: str) -> str:
        """The user logs in at the issuer with the directory password, grants the client
        the scopes and enters the code; where the issuer sends the browser last ('' when
        the login itself is refused)."""
        jar = f"{self.workdir}/jar-{user.name}"
        session = [f'cookie-jar = "{jar}"', f'cookie = "{jar}"']
        login = json.dumps({"username": user.name, "password": password})
        status, _, _ = self.curl([f'url = "{self.base}/api/auth/"', *session], body=login)
        if status != 200:
            return ""
        grant = json.dumps({"scope": USER_SCOPES})
        status, _, text = self.curl(
            [
                f'url = "{self.base}/api/auth/grant/{self.client["name"]}"',
                'request = "PUT"',
                *session,
            ],
            body=grant,
        )
        assert status == 200, (status, text[:300])
        _, redirect, _ = self.curl(
            [f'url = "{self.issuer}/device?code={user_code}&g_continue"', *session]
        )
        self.host.run(f"rm -f {jar}")
        return redirect

    def ask_token(self, grant: str, field: str, secret_file: str) -> tuple[TokenFiles | None, str]:
        """One request to the token endpoint with a grant whose secret value (device code,
        refresh token) is in a file; the token, or None and what the issuer said."""
        name = f"{self.workdir}/token-{uuid.uuid4().hex[:8]}"
        status, _, _ = self.curl(
            [
                f'url = "{self.issuer}/token"',
                f'user = "{self.client_login}"',
                f'data-urlencode = "grant_type={grant}"',
                f'data-urlencode = "{field}@{secret_file}"',
                f'output = "{name}.answer"',
            ]
        )
        token, said = save_token(self.host, f"{name}.answer", name)
        return token, said if token else f"HTTP {status}: {said}"

    def token(self, device_file: str, timeout_s: float = 30) -> tuple[TokenFiles | None, str]:
        """The terminal polls the token endpoint with its device code until the issuer
        answers with a token or an error other than 'authorization_pending'."""
        deadline = time.monotonic() + timeout_s
        while True:
            token, said = self.ask_token(DEVICE_GRANT, "device_code", device_file)
            if token is not None or "authorization_pending" not in said:
                return token, said
            if time.monotonic() > deadline:
                return None, said
            time.sleep(2)

    def refreshed(self, token: TokenFiles) -> tuple[TokenFiles | None, str]:
        """A new access token for the refresh token that came with ``token``."""
        return self.ask_token("refresh_token", "refresh_token", token.refresh)

    def claims(self, token: TokenFiles) -> dict[str, Any]:
        """The token's claims (its payload; the endpoint checks the signature)."""
        payload = self.host.check_output(
            "python3 -c \"import base64,sys; p=open(sys.argv[1]).read().split('.')[1];"
            " print(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)).decode())\" " + token.token
        )
        return dict(json.loads(payload))

    def close(self) -> None:
        self.host.run(f"rm -rf {self.workdir}")


@pytest.fixture
def terminal(testbed):
    found = Terminal(testbed, testbed.host(testbed.group("data_client")[0]))
    yield found
    found.close()


def test_directory_user_writes_with_its_own_token_until_removed(
    testbed, newcomers, terminal, record_property
):
    """A user added to the directory after `up` gets a WLCG-profile token for one endpoint
    with the device flow, holding only the scopes the directory gives it; the token writes
    under /users and reads back, and writes nothing in Rucio's area; without the user's
    approval the terminal gets no token; once the user is removed, the login at the
    issuer is refused and neither a new device code nor the refresh token that came with
    the first token gives a token."""
    node = testbed.group("xrootd")[0]
    audience = endpoint_audience(testbed, node)
    user = newcomers.add(["datalake"])
    password = newcomers.password(user)
    started = time.monotonic()

    unapproved = terminal.device_authorization(audience)
    token, said = terminal.token(unapproved["device_file"], timeout_s=0)
    assert token is None and "authorization_pending" in said, said

    asked = terminal.device_authorization(audience)
    landed = terminal.approve(user, password, asked["user_code"])
    assert parse_qs(urlsplit(landed).query).get("prompt") == ["deviceComplete"], landed
    token, said = terminal.token(asked["device_file"])
    assert token is not None, said
    got_token_s = time.monotonic() - started
    claims = terminal.claims(token)
    assert claims["aud"] == audience, claims
    assert claims["wlcg.ver"] == "1.0", claims
    assert set(claims["scope"].split()) == set(USER_SCOPES.split()), claims

    export = testbed.value("xrootd_export_path")
    https = f"https://{node}:{testbed.value('xrootd_https_port')}"
    ca = testbed.value("testbed_ca_file")
    client = terminal.host
    local = f"{terminal.workdir}/payload"
    client.check_output(f"head -c 65536 /dev/urandom > {local}")

    def put(path: str) -> str:
        out = client.run(
            f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca} -H @{token.header} "
            f"-T {local} {https}{path}"
        )
        return out.stdout.strip()[-3:]

    mine = f"{export}/users/{user.name}-{uuid.uuid4().hex[:8]}"
    rucio_area = f"{export}/rucio/{user.name}-{uuid.uuid4().hex[:8]}"
    written, refused = put(mine), put(rucio_area)
    back = client.run(
        f"curl -sS --fail --cacert {ca} -H @{token.header} -o {local}.back {https}{mine}"
        f" && cmp {local} {local}.back"
    )
    client.run(f"curl -sS -o /dev/null --cacert {ca} -H @{token.header} -X DELETE {https}{mine}")
    assert written in ("200", "201"), f"the user's token could not write {mine}: {written}"
    assert back.rc == 0, back.stderr
    assert refused in ("401", "403"), f"the user's token wrote in Rucio's area: {refused}"

    renewed, said = terminal.refreshed(token)
    assert renewed is not None, f"the refresh token gave no new token: {said}"

    removed = newcomers.controller.run(f"testbed-directory remove-user {user.name}")
    assert removed.rc == 0, removed.stderr
    gone_at = time.monotonic()
    after = terminal.device_authorization(audience)
    assert terminal.approve(user, password, after["user_code"]) == "", "removed user logged in"
    late, _ = terminal.token(after["device_file"], timeout_s=0)
    assert late is None, "a removed user's terminal got a token"
    late, _ = terminal.refreshed(token)
    assert late is None, "a removed user's refresh token still gave a token"
    record_property(
        "directory_user_storage_token",
        f"token {got_token_s:.1f} s after being added; login refused "
        f"{time.monotonic() - gone_at:.1f} s after removal",
    )
