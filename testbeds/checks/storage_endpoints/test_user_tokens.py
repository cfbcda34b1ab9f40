"""A directory user's own storage token: a user added to the directory after `up` gets a
token on a terminal with the device flow (RFC 8628: the terminal asks, the user logs in at
the issuer with the directory password and approves), and writes to an endpoint with it
within the scopes the directory gives every account; once removed from the directory,
the user gets no token any more, not even with a refresh token."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from testbeds.checks.device_flow import Terminal
from testbeds.checks.storage_tokens import endpoint_audience

# What the user asks for: read anywhere, write in the users' area (the account's scopes).
USER_SCOPES = "storage.read:/ storage.create:/users"


@pytest.fixture
def terminal(testbed):
    found = Terminal(testbed, testbed.host(testbed.group("data_client")[0]), USER_SCOPES)
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
    landed = terminal.approve(user.name, password, asked["user_code"])
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
    assert terminal.approve(user.name, password, after["user_code"]) == "", "removed user logged in"
    late, _ = terminal.token(after["device_file"], timeout_s=0)
    assert late is None, "a removed user's terminal got a token"
    late, _ = terminal.refreshed(token)
    assert late is None, "a removed user's refresh token still gave a token"
    record_property(
        "directory_user_storage_token",
        f"token {got_token_s:.1f} s after being added; login refused "
        f"{time.monotonic() - gone_at:.1f} s after removal",
    )
