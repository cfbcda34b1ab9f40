"""The image an HPC job runs: the digest its own pipeline pushed, not what the tag says
when the job starts.

The registry's nginx writes one JSON line for every manifest the registry accepted
(role container_registry: the account that pushed, the name and tag, the digest the
registry answered with); nothing of it comes from the client. A job credential is minted
for one build of one project at one commit (job_tokens.py), so the master pins an HPC
job's image to the last digest pushed under its name:tag by a credential of the same
project and commit. A tag a member moves later, or a push of that tag by another
pipeline, changes nothing for the job. Standard library only: read on the master's node."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Set
from dataclasses import dataclass
from pathlib import Path

from testbeds.nodeside.hpc_job import JobError, image_reference

# A manifest put by name and tag (a put by digest moves no tag).
MANIFEST_PUT = re.compile(r"^/v2/(?P<name>[a-z0-9][a-z0-9._/-]*)/manifests/(?P<tag>[^/:@]+)$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CREATED = 201


@dataclass(frozen=True)
class Push:
    """A manifest the registry accepted: who pushed it under which name:tag, its digest."""

    user: str
    name: str
    tag: str
    digest: str


def pushes(log: Path) -> Iterator[Push]:
    """The accepted pushes in the registry's push log, oldest first (an unreadable or
    foreign line is skipped: it pins nothing)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("status") != CREATED:
            continue
        match = MANIFEST_PUT.match(str(entry.get("uri", "")))
        digest = str(entry.get("digest", ""))
        if match is None or not DIGEST.match(digest):
            continue
        yield Push(str(entry.get("user", "")), match["name"], match["tag"], digest)


def pinned_digest(log: Path, name: str, tag: str, pushers: Set[str]) -> str | None:
    """The digest last pushed as `name:tag` by one of `pushers`, or None."""
    found = None
    for push in pushes(log):
        if push.name == name and push.tag == tag and push.user in pushers:
            found = push.digest
    return found


def name_and_tag(image: str, registry: str, project: str, commit: str) -> tuple[str, str]:
    """An HPC job's image as the gateway will read it ($CI_* filled in, checked to be in
    the project's own namespace at the testbed's registry). Raises ValueError."""
    environment = {"CI_REGISTRY": registry, "CI_PROJECT": project, "CI_COMMIT_SHA": commit}
    try:
        reference = image_reference(image, environment)
    except JobError as error:
        raise ValueError(str(error)) from None
    return reference["name"], reference["tag"]
