"""A directory account in Rucio with its own token: the definition's accounts have Rucio
accounts whose identity is their token's subject and issuer, so a user's token from the
testbed's issuer, asked for Rucio's URL, is the user in Rucio, and nothing else is."""

from __future__ import annotations

import json
import time

import pytest

from testbeds.checks.device_flow import Terminal
from testbeds.checks.storage_tokens import endpoint_audience

# A token for Rucio carries openid (Rucio's expected scope); its audience is Rucio's URL.
RUCIO_SCOPES = "openid"
# The token with the first character of its signature changed (its first six bits differ).
FORGE = (
    "import sys; head, _, sig = open(sys.argv[1]).read().strip().rpartition('.'); "
    "open(sys.argv[2], 'w').write(head + '.' + ('B' if sig[0] == 'A' else 'A') + sig[1:])"
)


@pytest.fixture
def terminal(testbed, client):
    found = Terminal(testbed, client, RUCIO_SCOPES)
    yield found
    found.close()


def rucio_url(testbed) -> str:
    return f"https://{testbed.group('rucio')[0]}:{testbed.value('rucio_port')}"


def whoami(testbed, client, token_file: str) -> tuple[int, str]:
    """Rucio's answer to the token (in a file, turned into a header file, never on a
    command line): the HTTP status and the account it names."""
    header = f"{token_file}.rucio"
    client.run(f"sed 's/^/X-Rucio-Auth-Token: /' {token_file} > {header} && chmod 600 {header}")
    out = client.run(
        f"curl -sS -L --cacert {testbed.value('testbed_ca_file')} -H @{header} "
        f"-w '\\n%{{http_code}}' {rucio_url(testbed)}/accounts/whoami"
    )
    body, _, status = out.stdout.rpartition("\n")
    account = json.loads(body).get("account", "") if status.strip() == "200" else ""
    return int(status or 0), account


def test_users_own_token_is_the_user_in_rucio_and_nothing_else_is(
    testbed, client, terminal, record_property
):
    """The definition's first account gets a token for Rucio's URL (device flow, its
    directory password), whose subject is its uid; Rucio takes it as the account of the
    same name. The same user's token for a storage endpoint, and the Rucio token with its
    signature altered, are refused."""
    user = testbed.research_user
    started = time.monotonic()
    token = terminal.accounts_token(user, rucio_url(testbed))
    claims = terminal.claims(token)
    assert claims["sub"] == user, claims
    assert claims["aud"] == rucio_url(testbed), claims
    assert whoami(testbed, client, token.token) == (200, user)
    took = time.monotonic() - started

    endpoint = endpoint_audience(testbed, testbed.group("xrootd")[0])
    storage = terminal.accounts_token(user, endpoint)
    assert whoami(testbed, client, storage.token)[0] == 401

    forged = f"{token.token}.forged"
    client.run(f'python3 -c "{FORGE}" {token.token} {forged}')
    assert whoami(testbed, client, forged)[0] == 401
    record_property("rucio_user_token", f"{user} is in Rucio with its own token in {took:.1f} s")
