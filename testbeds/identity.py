"""Which credential each service of a testbed accepts, by the role that runs it (`testbed
show`), as each role says in its `meta/testbed.yml` (testbeds/role_facts.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from testbeds.role_facts import role_facts


@dataclass(frozen=True)
class ServiceIdentity:
    service: str
    accepts: str


# Every node runs sshd for the control node; where no role lets users in, only root.
SSH_ROOT_ONLY = ServiceIdentity("sshd", "root by the control node's key; no user logs in")


def service_identities(roles: Iterable[str], testbed_roles: set[str]) -> list[ServiceIdentity]:
    """What the services of a node with `roles` accept, in a testbed whose nodes have
    `testbed_roles` (a service a role of the testbed replaces is left out; where the
    testbed has a token issuer, services that take its tokens say so)."""
    found: list[ServiceIdentity] = []
    for role in roles:
        for service in role_facts(role).services:
            if service.unless_role and service.unless_role in testbed_roles:
                continue
            accepts = service.accepts
            if "token_issuer" in testbed_roles and service.accepts_with_token_issuer:
                accepts = service.accepts_with_token_issuer
            identity = ServiceIdentity(service.name, accepts)
            if identity not in found:
                found.append(identity)
    if not any(identity.service == "sshd" for identity in found):
        found.insert(0, SSH_ROOT_ONLY)
    return found
