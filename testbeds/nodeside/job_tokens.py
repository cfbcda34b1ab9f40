"""Per-job credentials of the pipelines testbed: the Buildbot master mints one when a job
starts and revokes it when the job ends; the web services' access check
(wp5-project-access) accepts it while it stands, for its own project only.

A credential is a user name (`ci-job-<12 hex>`) and a random token. The store is one
folder on the master's node, which is also the registry's and MLflow's node: one file per
live credential, named after its user, holding the token's SHA-256 (never the token), its
project and when it expires. The folder is the master's to write and nginx's group to
read. Standard library only: used on the nodes by the master and by a PAM helper."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

USER = re.compile(r"^ci-job-[0-9a-f]{12}$")
# A repository name, as the git server and the registry's first path segment spell it.
PROJECT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class JobCredential:
    """What a job is given: its user name and token, for one project."""

    user: str
    token: str
    project: str


@dataclass(frozen=True)
class StoredCredential:
    """What the store keeps of a credential: the token's hash, the project, the expiry."""

    sha256: str
    project: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class JobTokenStore:
    """The folder of live job credentials."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def mint(self, project: str, lifetime_s: float) -> JobCredential:
        """A new credential for one job of `project`, valid for at most `lifetime_s`."""
        if not PROJECT.match(project):
            raise ValueError(f"project {project!r} is not a repository name")
        credential = JobCredential(
            user=f"ci-job-{secrets.token_hex(6)}", token=secrets.token_urlsafe(32), project=project
        )
        record = {
            "sha256": _digest(credential.token),
            "project": project,
            "expires": time.time() + lifetime_s,
        }
        path = self.folder / credential.user
        # O_EXCL: a name already taken is never overwritten; 0640: nginx's group reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        os.fchmod(fd, 0o640)  # whatever the master's umask (Buildbot's is 077)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out)
        return credential

    def revoke(self, user: str) -> None:
        if USER.match(user):
            (self.folder / user).unlink(missing_ok=True)

    def revoke_all(self) -> int:
        """Drop every credential (the master starting: no job of before runs any more)."""
        gone = 0
        for path in self.folder.glob("ci-job-*"):
            if USER.match(path.name):
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def lookup(self, user: str, token: str, now: float | None = None) -> StoredCredential | None:
        """The stored credential when `token` is the live token of `user`, else None."""
        if not USER.match(user):
            return None
        try:
            fd = os.open(self.folder / user, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, encoding="utf-8") as stored:
                record = json.load(stored)
            found = StoredCredential(
                sha256=str(record["sha256"]),
                project=str(record["project"]),
                expires=float(record["expires"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not hmac.compare_digest(found.sha256, _digest(token)):
            return None
        if found.expires <= (time.time() if now is None else now):
            return None
        return found
