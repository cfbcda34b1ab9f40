"""Storage tokens for Rucio's transfers and deletions, from the testbed's token issuer.

The endpoints accept WLCG-profile tokens whose audience is their HTTPS URL. Rucio asks
for a token with Auth0's ``audience`` parameter and names an RSE by its bare host name;
the testbed's issuer (glewlwyd) takes the audience as RFC 8707's ``resource``, an https
URL registered for the client. So the daemons use this module's two functions in place
of Rucio's own: the audience of an RSE is the URL of its davs:// endpoint, and a token is
asked for with ``resource``. ``install`` swaps them in where the reaper looks them up;
the gfal2 transfer tool's submitter asks for each copy's tokens with ``copy_tokens``.
Tokens are cached per audience and scope until a minute before they expire.

The client's credentials come from a file readable by the rucio user only
(``WP5_RUCIO_TOKEN_CLIENT``); without it no token is asked for and Rucio goes on without.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

CLIENT_FILE = Path(os.environ.get("WP5_RUCIO_TOKEN_CLIENT", "/opt/rucio/etc/token-client.json"))
# A cached token is renewed once less than this is left of its life.
RENEW_BEFORE_S = 60
REQUEST_TIMEOUT_S = 20


@dataclass(frozen=True)
class TokenClient:
    token_url: str
    client_id: str
    client_secret: str
    ca_file: str


_CACHE: dict[tuple[str, str], tuple[str, float]] = {}
_LOCK = threading.Lock()


def load_client(path: Path = CLIENT_FILE) -> TokenClient | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return TokenClient(
        token_url=str(data["token_url"]),
        client_id=str(data["client_id"]),
        client_secret=str(data["client_secret"]),
        ca_file=str(data["ca_file"]),
    )


def rse_scopes(scope: str) -> str:
    """The issuer registers a client's scopes as written (``storage.read:/rucio``), where
    Rucio writes an RSE's prefix with its trailing slash (``storage.read:/rucio/``)."""
    words = []
    for word in scope.split():
        name, sep, path = word.partition(":")
        if sep and len(path) > 1:
            path = path.rstrip("/") or "/"
        words.append(f"{name}{sep}{path}")
    return " ".join(words)


def _expiry(token: str) -> float:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims.get("exp", 0))


def request_token(audience: str, scope: str, use_cache: bool = True) -> str | None:
    """A token for ``audience`` (an https URL) with ``scope``, or None if none was given;
    the same signature as Rucio's ``rucio.core.oidc.request_token``."""
    scope = rse_scopes(scope)
    key = (audience, scope)
    with _LOCK:
        cached = _CACHE.get(key)
        if use_cache and cached and cached[1] - time.time() > RENEW_BEFORE_S:
            return cached[0]
    client = load_client()
    if client is None:
        return None
    asked = time.monotonic()
    try:
        response = requests.post(
            client.token_url,
            auth=(client.client_id, client.client_secret),
            data={"grant_type": "client_credentials", "scope": scope, "resource": audience},
            verify=client.ca_file,
            timeout=REQUEST_TIMEOUT_S,
        )
        response.raise_for_status()
        token = str(response.json()["access_token"])
    except (requests.RequestException, KeyError, ValueError) as exc:
        # The response may name the client but never holds its secret.
        logging.warning("no storage token for %s (%s): %s", audience, scope, exc)
        return None
    with _LOCK:
        _CACHE[key] = (token, _expiry(token))
    # Counted by the replication benchmark (its share of a transfer's cost).
    logging.info("storage token for %s (%s) in %.3f s", audience, scope, time.monotonic() - asked)
    return token


READ_SCOPES = ["storage.read"]
WRITE_SCOPES = ["storage.read", "storage.create", "storage.modify"]


@dataclass(frozen=True)
class Copy:
    """One file's copy: its source and destination URLs and their RSEs."""

    src: str
    src_rse_id: str
    dst: str
    dst_rse_id: str


def copy_tokens(copies: Iterable[Copy]) -> dict[str, str | None]:
    """For each copy (a job's files), each end's token by URL: a read token for the source,
    a write token for the destination, each for its endpoint's audience; None where one is
    needed and none was given. Ends that take no tokens are left out.

    What an end needs (whether it takes tokens, its audience, its scope) is read from
    Rucio's catalogue once per RSE and kind of access, not once per file: each reading is
    several database queries, which per file made the submitter spend most of its time
    here (a job's files share their two endpoints)."""
    from rucio.core.rse import determine_scope_for_rse, get_rse_attribute

    needs: dict[tuple[str, tuple[str, ...]], tuple[str, str] | None] = {}

    def need(rse_id: str, scopes: list[str]) -> tuple[str, str] | None:
        key = (rse_id, tuple(scopes))
        if key not in needs:
            takes_tokens = get_rse_attribute(rse_id, "oidc_support") is True
            needs[key] = (
                (
                    determine_audience_for_rse(rse_id),
                    determine_scope_for_rse(rse_id, scopes=scopes),
                )
                if takes_tokens
                else None
            )
        return needs[key]

    found: dict[str, str | None] = {}
    for copy in copies:
        for url, rse_id, scopes in (
            (copy.src, copy.src_rse_id, READ_SCOPES),
            (copy.dst, copy.dst_rse_id, WRITE_SCOPES),
        ):
            wanted = need(rse_id, scopes) if url.startswith("davs://") else None
            if wanted is not None:
                found[url] = request_token(*wanted)
    return found


def determine_audience_for_rse(rse_id: str) -> str:
    """The RSE's davs:// endpoint as an https URL, the audience the endpoint checks."""
    from rucio.core.rse import get_rse_protocols

    protocols = get_rse_protocols(rse_id)["protocols"]
    urls = sorted(
        {f"https://{p['hostname']}:{p['port']}" for p in protocols if p["scheme"] == "davs"}
    )
    return " ".join(urls)


def install() -> None:
    """Use these functions where the reaper looks Rucio's up."""
    from rucio.daemons.reaper import reaper

    reaper.request_token = request_token
    reaper.determine_audience_for_rse = determine_audience_for_rse
