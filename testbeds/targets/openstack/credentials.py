"""The credential a testbed's elastic nodes are resumed and suspended with on OpenStack: an
application credential of the operator's user in the testbed's project, which Keystone
scopes to that project alone, which cannot make further credentials (restricted), which
expires, and whose access rules let it do nothing but create, read and delete servers (and
read the flavors and images it names). Nova and Neutron do the rest on its behalf with their
own service tokens, as clouds since 2023 require (`[service_user] send_service_user_token`).

Its secret is returned once, to be written only where the resume program reads it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class AccessRule:
    service: str
    method: str
    path: str

    def as_request(self) -> dict[str, str]:
        return {"service": self.service, "method": self.method, "path": self.path}


# What resuming (create a server, wait for it) and suspending (delete it) request.
ELASTIC_ACCESS_RULES = (
    AccessRule("compute", "POST", "/v2.1/servers"),
    AccessRule("compute", "GET", "/v2.1/servers/**"),
    AccessRule("compute", "DELETE", "/v2.1/servers/*"),
    AccessRule("compute", "GET", "/v2.1/flavors/**"),
    AccessRule("image", "GET", "/v2/images/*"),
)
ELASTIC_ROLE = "member"


@dataclass(frozen=True)
class MintedCredential:
    """An application credential as Keystone made it; `secret` is shown only this once."""

    id: str
    name: str
    project_id: str
    secret: str
    expires_at: str


class Identity(Protocol):
    """The part of an openstacksdk Connection minting uses."""

    @property
    def current_user_id(self) -> str | None: ...
    @property
    def current_project_id(self) -> str | None: ...
    @property
    def identity(self) -> Any: ...


def mint_elastic_credential(
    cloud: Identity, instance: str, lifetime: dt.timedelta = dt.timedelta(days=30)
) -> MintedCredential:
    """A fresh credential for `instance`'s elastic nodes in the connection's project."""
    user, project = cloud.current_user_id, cloud.current_project_id
    if user is None or project is None:
        raise ValueError("the connection is not scoped to a project")
    expires = (dt.datetime.now(dt.UTC) + lifetime).replace(microsecond=0)
    made = cloud.identity.create_application_credential(
        user,
        name=f"wp5-testbeds-{instance}-elastic",
        description=f"resume and suspend the elastic nodes of testbed {instance}",
        roles=[{"name": ELASTIC_ROLE}],
        unrestricted=False,
        access_rules=[rule.as_request() for rule in ELASTIC_ACCESS_RULES],
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return MintedCredential(
        id=str(made.id),
        name=str(made.name),
        project_id=project,
        secret=str(made.secret),
        expires_at=str(made.expires_at),
    )
