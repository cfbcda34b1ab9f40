"""A directory user's own storage token: a user added to the directory after `up` gets a
token on a terminal with the device flow (RFC 8628: the terminal asks, the user logs in at
the issuer with the directory password and approves), and writes to an endpoint with it
within the scopes the directory gives every account: in the user's own area
(`/users/<name>/files`) and nowhere else; once removed from the directory, the user gets no
token any more, not even with a refresh token."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.by import By

from testbeds.checks.device_flow import Terminal
from testbeds.checks.issuer_pages import enter_device_code, grant_and_continue, log_in
from testbeds.checks.storage_tokens import WRITE_SCOPES, StorageTokens, endpoint_audience

# What the user asks for: read anywhere, write in the user's own area (the account's
# scopes; {user} is the user's name).
USER_SCOPES = "storage.read:/ storage.create:/users/{user}/files"


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
    under /users/<name>/files and reads back; it neither writes in Rucio's area nor overwrites,
    deletes or adds to another account's files under /users; without the user's approval
    the terminal gets no token; once the user is removed, the login at the issuer is
    refused and neither a new device code nor the refresh token that came with the first
    token gives a token."""
    node = testbed.group("xrootd")[0]
    audience = endpoint_audience(testbed, node)
    user = newcomers.add(["datalake"])
    password = newcomers.password(user)
    started = time.monotonic()

    unapproved = terminal.device_authorization(audience, user.name)
    token, said = terminal.token(unapproved["device_file"], timeout_s=0)
    assert token is None and "authorization_pending" in said, said

    asked = terminal.device_authorization(audience, user.name)
    landed = terminal.approve(user.name, password, asked["user_code"])
    assert parse_qs(urlsplit(landed).query).get("prompt") == ["deviceComplete"], landed
    token, said = terminal.token(asked["device_file"])
    assert token is not None, said
    got_token_s = time.monotonic() - started
    claims = terminal.claims(token)
    assert claims["aud"] == audience, claims
    assert claims["wlcg.ver"] == "1.0", claims
    assert set(claims["scope"].split()) == set(terminal.scopes(user.name).split()), claims

    export = testbed.value("xrootd_export_path")
    https = f"https://{node}:{testbed.value('xrootd_https_port')}"
    ca = testbed.value("testbed_ca_file")
    client = terminal.host
    local = f"{terminal.workdir}/payload"
    client.check_output(f"head -c 65536 /dev/urandom > {local}")

    def request(path: str, *how: str, header: str = token.header) -> str:
        out = client.run(
            f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca} -H @{header} "
            f"{' '.join(how)} {https}{path}"
        )
        return out.stdout.strip()[-3:]

    tag = uuid.uuid4().hex[:8]
    mine = f"{export}/users/{user.name}/files/{tag}"
    rucio_area = f"{export}/rucio/{user.name}-{tag}"
    # Another account's results, and a name beside the user's own that only starts the same.
    other = testbed.value("users_accounts")[0]["name"]  # one of the definition's accounts
    theirs = f"{export}/users/{other}/files/{tag}"
    # XRootD matches a token's path as a string prefix: the area ends in a fixed name, so
    # that /users/<name>/files is no prefix of another account's (/users/<name>x/files).
    lookalike = f"{export}/users/{user.name}x/files/{tag}"
    tools = StorageTokens(testbed, client)
    try:
        owner = tools.get(node, WRITE_SCOPES)
        assert request(theirs, f"-T {local}", header=owner.header) in ("200", "201")
        written, refused = request(mine, f"-T {local}"), request(rucio_area, f"-T {local}")
        back = client.run(
            f"curl -sS --fail --cacert {ca} -H @{token.header} -o {local}.back {https}{mine}"
            f" && cmp {local} {local}.back"
        )
        others = {
            "overwrite": request(theirs, f"-T {local}"),
            "delete": request(theirs, "-X DELETE"),
            "write beside": request(f"{theirs}-added", f"-T {local}"),
            "write in a look-alike area": request(lookalike, f"-T {local}"),
        }
        still_theirs = request(theirs, "-I", header=owner.header)
        request(mine, "-X DELETE")
        request(theirs, "-X DELETE", header=owner.header)
    finally:
        tools.close()
    assert written in ("200", "201"), f"the user's token could not write {mine}: {written}"
    assert back.rc == 0, back.stderr
    assert refused in ("401", "403"), f"the user's token wrote in Rucio's area: {refused}"
    assert all(code in ("401", "403") for code in others.values()), (
        f"the user's token reached another account's area: {others}"
    )
    assert still_theirs == "200", f"another account's file is gone: {still_theirs}"

    renewed, said = terminal.refreshed(token)
    assert renewed is not None, f"the refresh token gave no new token: {said}"

    removed = newcomers.controller.run(f"testbed-directory remove-user {user.name}")
    assert removed.rc == 0, removed.stderr
    gone_at = time.monotonic()
    after = terminal.device_authorization(audience, user.name)
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


def test_a_user_approves_a_device_code_on_the_issuers_page(testbed, web_browser, record_property):
    """In a real browser: a terminal asks for a device code; the user opens the issuer's
    device page, enters the code, logs in with the directory password, grants the scopes
    the first time and sees the approval complete; the terminal's next poll gets the
    user's token for the endpoint, with the user's own scopes."""
    user = testbed.value("users_accounts")[0]["name"]
    password = (testbed.secrets_dir / f"user-{user}-password").read_text().strip()
    node = testbed.group("xrootd")[0]
    audience = endpoint_audience(testbed, node)
    terminal = Terminal(testbed, testbed.host(testbed.group("data_client")[0]), USER_SCOPES)
    try:
        started = time.monotonic()
        asked = terminal.device_authorization(audience, user)
        web_browser.open(f"{terminal.issuer}/device")
        enter_device_code(web_browser, asked["user_code"])
        log_in(web_browser, user, password)
        grant_and_continue(web_browser)
        web_browser.wait(lambda driver: "prompt=deviceComplete" in driver.current_url)
        web_browser.wait(lambda driver: "Authorization complete" in page_text(driver))
        web_browser.shot("approved")
        token, said = terminal.token(asked["device_file"])
        assert token is not None, said
        claims = terminal.claims(token)
    finally:
        terminal.close()
    assert claims["aud"] == audience, claims
    assert set(claims["scope"].split()) == set(terminal.scopes(user).split()), claims
    record_property("browser_device_code", f"code to token {time.monotonic() - started:.1f} s")


def page_text(driver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)
