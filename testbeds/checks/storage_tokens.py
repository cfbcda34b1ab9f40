"""Storage tokens for the checks: asked for on a node by client credentials, as any client
of the testbed would, and kept there in root-only files.

A token's secret parts never reach a command line: the client's secret goes in a 0600
curl config file, and the token goes from curl's output straight into 0600 files, one
with the bare token (for XRootD's ztn, through ``BEARER_TOKEN_FILE``) and one with the
``Authorization`` header (for curl's ``-H @file``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from testbeds.checks.helpers import write_private_file

# Scopes the checks ask for: reading, and writing (which reads back and overwrites too).
READ_SCOPES = "storage.read:/"
WRITE_SCOPES = "storage.read:/ storage.create:/ storage.modify:/"
# A token is asked for again once less than this is left of its life.
RENEW_BEFORE_S = 60

# Writes the token and its header files (and a refresh token, if the answer has one) from
# the issuer's JSON answer (argv: answer, out) and prints the token's lifetime (expires_in,
# not a secret).
_SAVE = (
    "import json,os,sys; os.umask(0o077); a=json.load(open(sys.argv[1])); t=a.get('access_token');"
    " t or sys.exit('no token: ' + open(sys.argv[1]).read()[:300]);"
    " print(int(a.get('expires_in', 0)));"
    " open(sys.argv[2], 'w').write(t);"
    " open(sys.argv[2] + '.header', 'w').write('Authorization: Bearer ' + t + '\\n');"
    " open(sys.argv[2] + '.source', 'w').write('TransferHeaderAuthorization: Bearer ' + t + '\\n');"
    " r=a.get('refresh_token'); r and open(sys.argv[2] + '.refresh', 'w').write(r)"
)


def issuer_url(testbed: Any) -> str:
    node = testbed.group("token_issuer")[0]
    return f"https://{node}:{testbed.value('token_issuer_port')}/api/oidc"


def storage_client(testbed: Any, name: str = "", audiences: Sequence[str] = ()) -> dict[str, Any]:
    """The definition's client called ``name``, or its first with client credentials and
    storage scopes (registered for every one of ``audiences``: a composed testbed has
    clients for other endpoints too)."""
    for client in testbed.value("token_issuer_clients"):
        if name and client["name"] != name:
            continue
        if (
            "client_credentials" in client["grants"]
            and any(scope.startswith("storage.") for scope in client["scopes"])
            and set(audiences) <= set(client.get("audiences", ()))
        ):
            return dict(client)
    raise LookupError(f"the definition has no storage client {name or ''}".strip())


def endpoint_audience(testbed: Any, node: str) -> str:
    return f"https://{node}:{testbed.value('xrootd_https_port')}"


@dataclass(frozen=True)
class TokenFiles:
    """Where one token is on the node: bare, as a request header, and as the header that
    hands it to a third-party copy's source."""

    token: str

    @property
    def refresh(self) -> str:
        """The refresh token that came with it (user grants; a file only if there was one)."""
        return f"{self.token}.refresh"

    @property
    def header(self) -> str:
        return f"{self.token}.header"

    @property
    def source_header(self) -> str:
        return f"{self.token}.source"


def save_token(host: Any, answer: str, name: str) -> tuple[TokenFiles | None, str]:
    """The token in the issuer's JSON answer (a file on ``host``, removed here) saved as
    ``name``'s files, with its lifetime in seconds; or None and the start of the answer
    (an error carries no token)."""
    out = host.run(f'python3 -c "{_SAVE}" {answer} {name}')
    host.run(f"rm -f {answer}")
    if out.rc != 0:
        return None, (out.stdout + out.stderr)[-300:]
    return TokenFiles(token=name), out.stdout.strip().splitlines()[-1]


class StorageTokens:
    """Tokens of one issuer client, got on ``host`` and cached per audience and scope
    until shortly before they expire (a long benchmark outlives the first ones)."""

    def __init__(
        self, testbed: Any, host: Any, client_name: str = "", nodes: Sequence[str] = ()
    ) -> None:
        """Tokens of the client registered for the endpoints on ``nodes`` (every
        endpoint's unless named)."""
        self.testbed = testbed
        self.host = host
        endpoints = [endpoint_audience(testbed, n) for n in nodes or testbed.group("xrootd")]
        self.client = storage_client(testbed, client_name, endpoints)
        self.workdir = host.check_output("mktemp -d")
        self._files: dict[tuple[str, str], tuple[TokenFiles, float]] = {}

    def get(self, node: str, scope: str) -> TokenFiles:
        """A token for the endpoint on ``node`` with ``scope`` (space-separated)."""
        key = (node, scope)
        cached = self._files.get(key)
        if cached is None or time.monotonic() >= cached[1]:
            self._files[key] = self.ask(endpoint_audience(self.testbed, node), scope)
        return self._files[key][0]

    def ask(self, audience: str, scope: str) -> tuple[TokenFiles, float]:
        """A new token, and the monotonic time it should be renewed at."""
        secret_file = self.testbed.secrets_dir / f"issuer-{self.client['name']}-password"
        secret = secret_file.read_text().strip()
        name = f"{self.workdir}/{uuid.uuid4().hex[:8]}"
        config = "\n".join(
            [
                f'url = "{issuer_url(self.testbed)}/token"',
                f'user = "{self.client["name"]}:{secret}"',
                'data-urlencode = "grant_type=client_credentials"',
                f'data-urlencode = "scope={scope}"',
                f'data-urlencode = "resource={audience}"',
                f'output = "{name}.answer"',
            ]
        )
        write_private_file(self.host, f"{name}.curl", config)
        ca = self.testbed.value("testbed_ca_file")
        out = self.host.run(f"curl -sS --cacert {ca} -K {name}.curl")
        self.host.run(f"rm -f {name}.curl")
        assert out.rc == 0, f"no token for {audience} ({scope}): {out.stderr[-500:]}"
        token, lifetime = save_token(self.host, f"{name}.answer", name)
        assert token is not None, f"no token for {audience} ({scope}): {lifetime}"
        return token, time.monotonic() + int(lifetime) - RENEW_BEFORE_S

    def close(self) -> None:
        # The node may be gone (taken down first): then nothing is left to remove.
        with contextlib.suppress(RuntimeError):
            self.host.run(f"rm -rf {self.workdir}")
