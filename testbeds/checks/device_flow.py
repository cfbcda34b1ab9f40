"""A user's terminal and browser getting the user's own token from the testbed's issuer
with the device flow (RFC 8628): the terminal asks, the user logs in at the issuer with the
directory password, grants the scopes and enters the code, the terminal polls for the
token. Every secret (client secret, password, device code, token) goes in 0600 files on
the node, never on a command line."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from testbeds.checks.helpers import write_private_file
from testbeds.checks.storage_tokens import TokenFiles, issuer_url, save_token

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


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

    def __init__(self, testbed: Any, host: Any, scopes: str) -> None:
        """``scopes``: space-separated; ``{user}`` stands for the name of the user asking."""
        self.testbed = testbed
        self.host = host
        self.scope_template = scopes
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

    def scopes(self, username: str) -> str:
        """The scopes ``username`` asks for."""
        return self.scope_template.replace("{user}", username)

    def device_authorization(self, audience: str, username: str) -> dict[str, Any]:
        """The terminal of ``username`` asks: a device code (kept in a file) and the code
        the user enters."""
        status, _, text = self.curl(
            [
                f'url = "{self.issuer}/device_authorization"',
                f'user = "{self.client_login}"',
                f'data-urlencode = "scope={self.scopes(username)}"',
                f'data-urlencode = "resource={audience}"',
            ]
        )
        assert status == 200, (status, text[:300])
        answer = json.loads(text)
        device_file = f"{self.workdir}/device-{uuid.uuid4().hex[:8]}"
        write_private_file(self.host, device_file, answer["device_code"])
        return {"user_code": answer["user_code"], "device_file": device_file}

    def approve(self, username: str, password: str, user_code: str) -> str:
        """The user logs in at the issuer with the directory password, grants the client
        the scopes and enters the code; where the issuer sends the browser last ('' when
        the login itself is refused)."""
        jar = f"{self.workdir}/jar-{username}"
        session = [f'cookie-jar = "{jar}"', f'cookie = "{jar}"']
        login = json.dumps({"username": username, "password": password})
        status, _, _ = self.curl([f'url = "{self.base}/api/auth/"', *session], body=login)
        if status != 200:
            return ""
        grant = json.dumps({"scope": self.scopes(username)})
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

    def accounts_token(self, user: str, audience: str) -> TokenFiles:
        """A token of one of the definition's accounts (its directory password is a testbed
        secret) for an audience: asked, approved, polled."""
        password = (self.testbed.secrets_dir / f"user-{user}-password").read_text().strip()
        asked = self.device_authorization(audience, user)
        self.approve(user, password, asked["user_code"])
        token, said = self.token(asked["device_file"])
        assert token is not None, said
        return token

    def close(self) -> None:
        self.host.run(f"rm -rf {self.workdir}")
