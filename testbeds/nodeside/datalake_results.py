"""An HPC job's results into the datalake: what the job's script left in its results folder
($WP5_RESULTS) is written to the HPC site's storage endpoint, in its project's area,
registered in Rucio under the project's scope at that area's RSE (not deterministic: a
file is registered by its URL), and a rule of the project's Rucio account copies it to a
grid site, where Rucio's transfer verifies its adler32.

Every request carries one of the tokens the Buildbot master minted for this job alone
(datalake_tokens.py): the storage endpoint's, which writes only in the project's area, and
Rucio's, which acts as the project's account. Run by wp5-hpc-job on the gateway after the
Slurm job; standard library only."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from testbeds.nodeside.own_files import open_regular

# A result's file name: a plain word (it becomes part of a URL and of a Rucio name).
RESULT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_RESULTS = 20
# Rucio's limits on what this module makes (scope, account) and its own names.
RUCIO_SCOPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,24}$")
RUCIO_ACCOUNT = re.compile(r"^[a-z0-9_-]{1,25}$")
PROJECT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CHUNK = 1 << 20
# Less than this left of a token's life, and the results are not started on.
MIN_TOKEN_LEFT_S = 30


class DatalakeError(Exception):
    """Why the results did not go into the datalake, in one line."""


@dataclass(frozen=True)
class Datalake:
    """Where results go (from the gateway's settings; `{project}` stands for the job's)."""

    storage_url: str  # the storage endpoint, https://host:port (its tokens' audience)
    export_path: str  # the endpoint's namespace (/data)
    area: str  # the project's area below it (/users/pipeline-{project})
    rse: str  # the RSE of that area (not deterministic)
    rucio_url: str  # Rucio's REST API (its tokens' audience)
    account: str  # the project's Rucio account (pipeline-{project})
    scope: str  # the project's Rucio scope (project.{project})
    copy_to: str  # RSE expression of the rule's one copy (a grid site)

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> Datalake:
        return cls(**{field: str(values[field]) for field in cls.__dataclass_fields__})

    def for_project(self, project: str) -> Datalake:
        if not PROJECT.match(project):
            raise DatalakeError(f"project {project[:80]!r} is not a repository name")
        made = replace(
            self,
            area=self.area.replace("{project}", project),
            account=self.account.replace("{project}", project),
            scope=self.scope.replace("{project}", project),
        )
        if not RUCIO_SCOPE.match(made.scope) or not RUCIO_ACCOUNT.match(made.account):
            raise DatalakeError(
                f"project {project}: Rucio scope {made.scope!r} or account {made.account!r} "
                "is longer than Rucio allows (25 characters)"
            )
        return made

    def url(self, run: str, name: str) -> str:
        return f"{self.storage_url}{self.export_path}{self.area}/{run}/{name}"

    def pfn(self, run: str, name: str) -> str:
        """The replica's URL as the RSE's davs:// protocol spells it."""
        return "davs://" + self.url(run, name).removeprefix("https://")


@dataclass(frozen=True)
class Result:
    """One file the job left: its name, size and adler32 (as Rucio writes it)."""

    path: Path
    name: str
    bytes: int
    adler32: str


def results_in(folder: Path) -> list[Result]:
    """The regular files directly in `folder`, each with its size and adler32; anything
    else there (a link, a folder, a name that is not a plain word) is refused."""
    names = sorted(os.listdir(folder))
    if len(names) > MAX_RESULTS:
        raise DatalakeError(f"{len(names)} results: at most {MAX_RESULTS} files")
    found = []
    for name in names:
        if not RESULT_NAME.match(name):
            raise DatalakeError(f"result {name[:80]!r}: not a plain file name")
        opened = open_regular(folder / name)
        if opened is None:
            raise DatalakeError(f"result {name}: not a regular file")
        with opened:
            checksum, size = 1, 0
            while chunk := opened.read(CHUNK):
                checksum = zlib.adler32(chunk, checksum)
                size += len(chunk)
        found.append(Result(folder / name, name, size, f"{checksum:08x}"))
    return found


def expiry(token: str) -> float | None:
    """When a JWT expires (its `exp`, read without checking the signature: the services
    check that), or None if it does not say."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class Client:
    """HTTPS to the storage endpoint and Rucio, each request with its audience's token,
    verified against the testbed CA."""

    def __init__(self, datalake: Datalake, tokens: dict[str, str], ca_file: str) -> None:
        missing = {datalake.storage_url, datalake.rucio_url} - set(tokens)
        if missing:
            raise DatalakeError(f"no token for {', '.join(sorted(missing))}")
        ends = [e for e in map(expiry, tokens.values()) if e is not None]
        if ends and min(ends) < time.time() + MIN_TOKEN_LEFT_S:
            raise DatalakeError(
                "the job's tokens expired (they last the issuer's token lifetime from the "
                "start of the job's step); its results stay in its job folder"
            )
        self.datalake = datalake
        self.tokens = tokens
        self.context = ssl.create_default_context(cafile=ca_file)

    def _send(self, request: urllib.request.Request, what: str) -> bytes:
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=120) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode(errors="replace").strip()
            raise DatalakeError(f"{what}: HTTP {error.code} {detail}") from None
        except OSError as error:
            raise DatalakeError(f"{what}: {error}") from None

    def write(self, run: str, result: Result) -> None:
        opened = open_regular(result.path)
        if opened is None:
            raise DatalakeError(f"result {result.name}: not a regular file")
        with opened:
            request = urllib.request.Request(
                self.datalake.url(run, result.name),
                data=opened,
                method="PUT",
                headers={
                    "Authorization": f"Bearer {self.tokens[self.datalake.storage_url]}",
                    "Content-Length": str(result.bytes),
                },
            )
            self._send(request, f"writing {result.name} to {self.datalake.storage_url}")

    def rucio(self, path: str, body: Any, what: str) -> bytes:
        request = urllib.request.Request(
            f"{self.datalake.rucio_url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "X-Rucio-Auth-Token": self.tokens[self.datalake.rucio_url],
                "Content-Type": "application/json",
            },
        )
        return self._send(request, what)


def did_name(run: str, result: Result) -> str:
    return f"{run}.{result.name}"


def publish(
    datalake: Datalake, tokens: dict[str, str], ca_file: str, run: str, folder: Path
) -> list[str]:
    """Write, register and copy on every result; the lines to print. Nothing is left half
    registered without saying so: the first failure raises DatalakeError."""
    results = results_in(folder)
    if not results:
        return ["datalake: the job left no results"]
    client = Client(datalake, tokens, ca_file)
    for result in results:
        client.write(run, result)
    dids = [{"scope": datalake.scope, "name": did_name(run, r)} for r in results]
    client.rucio(
        "/replicas",
        {
            "rse": datalake.rse,
            "files": [
                {
                    **did,
                    "bytes": result.bytes,
                    "adler32": result.adler32,
                    "pfn": datalake.pfn(run, result.name),
                }
                for did, result in zip(dids, results, strict=True)
            ],
        },
        f"registering the results at {datalake.rse}",
    )
    answer = client.rucio(
        "/rules/",
        {
            "dids": dids,
            "copies": 1,
            "rse_expression": datalake.copy_to,
            "account": datalake.account,
        },
        f"asking for a copy at {datalake.copy_to}",
    )
    try:
        rules = json.loads(answer)  # the new rules' ids
    except ValueError:
        raise DatalakeError(f"Rucio answered the rule with {answer[:100]!r}") from None
    lines = [
        f"datalake: {did['scope']}:{did['name']} {result.bytes} bytes adler32 {result.adler32}"
        f" at {datalake.rse}"
        for did, result in zip(dids, results, strict=True)
    ]
    rule_ids = ", ".join(str(rule) for rule in rules)
    lines.append(f"datalake: rule {rule_ids} copies them to {datalake.copy_to}")
    return lines
