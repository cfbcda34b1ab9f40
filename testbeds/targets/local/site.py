"""The local target's section of a site profile (`local:`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from testbeds.model.fields import CIDR, MIRROR_PATTERN, Strict


class LocalSite(Strict):
    """Values the local podman target needs from a site."""

    debian_mirror: Annotated[str, Field(pattern=MIRROR_PATTERN)]
    debian_suite: Literal["bookworm"] = "bookworm"
    network_subnet: CIDR | None = Field(
        default=None, description="CIDR for the testbed network; podman picks one when unset"
    )
