"""Constants and helpers of the pipeline checks."""

from __future__ import annotations

from typing import Any

REPOSITORY = "research-pipeline"
DEVELOPER = "developer"
# A green run of the sample pipeline takes about a minute here; leave room for a busy host.
PIPELINE_TIMEOUT_S = 600


def master_secrets(testbed: Any) -> str:
    """Where Debian's Buildbot keeps the master's secrets (the buildbot_master role's)."""
    return f"/var/lib/buildbot/masters/{testbed.value('buildbot_master_name')}/secrets"


def http_status(out: Any) -> tuple[int, str]:
    """Split what `curl -w '\\n%{http_code}'` printed into the status and the body."""
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body
