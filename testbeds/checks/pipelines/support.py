"""Constants and helpers of the pipeline checks."""

from __future__ import annotations

from typing import Any

REPOSITORY = "research-pipeline"
DEVELOPER = "developer"
# A green run of the sample pipeline takes about a minute here; leave room for a busy host.
PIPELINE_TIMEOUT_S = 600
MASTER_SECRETS = "/var/lib/buildbot/masters/pipelines/secrets"
CA_FILE = "/etc/grid-security/ca.pem"


def plan_var(testbed: Any, name: str, default: Any) -> Any:
    return testbed.plan.get("vars", {}).get(name, default)


def http_status(out: Any) -> tuple[int, str]:
    """Split what `curl -w '\\n%{http_code}'` printed into the status and the body."""
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body
