"""Field types the definition model and every target's site-profile model share: names,
hosts, users, paths and networks, each checked as data before it reaches a shell, a
config file or a path."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Names become host names, Ansible group names and container names.
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
GROUP_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
# Node group names prefix node (host) names, so no underscore.
NODE_GROUP_PATTERN = r"^[a-z][a-z0-9]{0,20}$"

# Ansible variable names a definition may set (keys of `vars`).
VAR_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
# Connection, privilege and magic variables (ansible_*) and the tool's own (testbed_*):
# a definition that set them could point Ansible at another host or run it as another user.
RESERVED_VAR_PREFIXES = ("ansible_", "testbed_")
# Login names on nodes and bastions (POSIX portable, as useradd takes them).
USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
# Mirror URLs reach a shell script (quoted) and apt's sources.list: no quotes or spaces.
MIRROR_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+/-]*)?$"


def check_host(value: str) -> str:
    """A host name or an IP address, nothing else (no options, no spaces, no quotes)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_NAME.match(value):
        raise ValueError(f"{value[:60]!r} is not a host name or IP address")
    return value


def _file_path(value: str) -> str:
    """A path written into ssh_config: printable, no quotes, no ssh %-tokens."""
    if not value or any(c in value for c in '"%') or not value.isprintable():
        raise ValueError("must be a file path without quotes, '%' or control characters")
    return value


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
HostName = Annotated[str, AfterValidator(check_host)]
UserName = Annotated[str, Field(pattern=USER_PATTERN)]
FilePath = Annotated[str, AfterValidator(_file_path)]
IPAddress = Annotated[str, AfterValidator(lambda v: str(ipaddress.ip_address(v)))]
TargetName = Literal["local", "openstack", "kubernetes", "static"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value[:60]!r} is not a network in CIDR notation") from None
    return value


CIDR = Annotated[str, Field(pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"), AfterValidator(_cidr)]


HttpsURL = Annotated[
    str, Field(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+/-]*)?$")
]
