"""Datalake tokens for one HPC job of the pipelines testbed, where the instance has a token
issuer and Rucio (research-infrastructure).

When an HPC job's step starts, the Buildbot master asks the issuer, by client credentials
of its project's client (`pipeline-<project>`, whose secret only the master holds), for one
token per audience of that client: the HPC site's storage endpoint (writing only in the
project's area) and Rucio (acting as the project's Rucio account). They reach that job's
wp5-hpc-job alone, in its environment, and expire with the issuer's token lifetime; the CI
account holds no secret that makes more. Standard library only: run by the master."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The environment variable the job finds its tokens in (JobTokens as JSON).
ENVIRONMENT_VARIABLE = "WP5_DATALAKE_TOKENS"


@dataclass(frozen=True)
class DatalakeClient:
    """A project's client of the issuer: the project (the directory's, whose repositories'
    jobs use it), its name, the secret's file, scopes and audiences."""

    project: str
    name: str
    secret_file: Path
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class JobTokens:
    """What the master hands one job: its project and a token per audience, or why none."""

    project: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobTokens:
        """The master's JSON, checked; ValueError saying what is wrong with it."""
        try:
            values = json.loads(text)
        except ValueError:
            raise ValueError(f"{ENVIRONMENT_VARIABLE} is not JSON") from None
        if not isinstance(values, dict) or set(values) != {"project", "tokens", "error"}:
            raise ValueError(f"{ENVIRONMENT_VARIABLE} is not the master's record of tokens")
        project, tokens, error = values["project"], values["tokens"], values["error"]
        if not (
            isinstance(project, str)
            and isinstance(error, str)
            and isinstance(tokens, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in tokens.items())
        ):
            raise ValueError(f"{ENVIRONMENT_VARIABLE} is not the master's record of tokens")
        return cls(project, tokens, error)


@dataclass(frozen=True)
class Issuer:
    """The issuer's token endpoint, verified against the testbed CA."""

    url: str
    ca_file: str
    timeout_s: float = 30.0

    def token(self, client: DatalakeClient, audience: str) -> str:
        """One token of `client` for `audience`, with every scope the client has."""
        secret = client.secret_file.read_text().strip()
        basic = base64.b64encode(f"{client.name}:{secret}".encode()).decode()
        body = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "scope": " ".join(client.scopes),
                "resource": audience,
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/token",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(request, context=context, timeout=self.timeout_s) as answer:
            token = json.loads(answer.read()).get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError(f"the issuer gave client {client.name} no token for {audience}")
        return token

    def tokens(self, client: DatalakeClient) -> dict[str, str]:
        """A token of `client` for each of its audiences."""
        return {audience: self.token(client, audience) for audience in client.audiences}
