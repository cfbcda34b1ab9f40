"""What every concern of a testbed's OpenStack infrastructure is: a child component."""

from __future__ import annotations

import pulumi


class Part(pulumi.ComponentResource):
    """One concern (network, security, compute, storage, access) of a testbed.

    Its resources were children of the testbed component itself before each concern had
    a component of its own; the alias keeps them, unreplaced, in stacks made back then."""

    def __init__(self, kind: str, name: str, testbed: pulumi.Resource) -> None:
        super().__init__(
            f"testbeds:openstack:{kind}", name, None, pulumi.ResourceOptions(parent=testbed)
        )
        self.child = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=testbed)])
