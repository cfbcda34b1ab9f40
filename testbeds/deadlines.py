"""How long each external call may take before it is stopped with a one-line error.

Every default can be changed with an environment variable TESTBED_TIMEOUT_<NAME>_S (whole
seconds), for slow mirrors or large sites."""

from __future__ import annotations

import os

from testbeds.errors import TestbedError

DEFAULTS_S: dict[str, int] = {
    # The whole configure run (every role on every node).
    "ansible": 3600,
    # Building the local base image from the Debian mirror.
    "debootstrap": 1200,
    # One `testbed verify` (every check suite against every node).
    "verify": 1800,
    # One Pulumi operation (up, destroy, refresh) through the Automation API.
    "pulumi": 3600,
}


class DeadlineExpired(TestbedError):
    """An external call ran past its deadline and was stopped."""


def variable(name: str) -> str:
    return f"TESTBED_TIMEOUT_{name.upper()}_S"


def seconds(name: str) -> int:
    """The deadline of `name`, from its environment variable or the default."""
    raw = os.environ.get(variable(name))
    if raw is None or raw == "":
        return DEFAULTS_S[name]
    if not raw.isdigit() or int(raw) == 0:
        raise TestbedError(
            f"environment {variable(name)}: {raw[:40]!r} is not a whole number of seconds > 0"
        )
    return int(raw)


def expired(name: str, limit_s: int, what: str) -> str:
    """The one line that says what timed out and how to allow more time."""
    return (
        f"{name} timed out after {limit_s}s {what}; it was stopped "
        f"(allow more with {variable(name)}=SECONDS)"
    )
