"""The static target's section of a site profile (`static:`): how the control node logs in
to a site's existing hosts."""

from __future__ import annotations

from pydantic import Field

from testbeds.model.fields import FilePath, HostName, Strict, UserName


class StaticBastion(Strict):
    """The jump host every node of a static site is reached through."""

    host: HostName = Field(description="address the control node reaches the bastion on")
    user: UserName = "root"
    port: int = Field(default=22, ge=1, le=65535)


class StaticSite(Strict):
    """How the control node logs in to a site's existing hosts (listed in its hosts.yml)."""

    user: UserName = Field(
        default="root", description="login user on every node (sudo if not root)"
    )
    private_key: FilePath = Field(
        description="private key file; relative paths from the site folder"
    )
    known_hosts: FilePath = Field(
        description="known_hosts file with every node's and the bastion's host key"
    )
    bastion: StaticBastion | None = None
