"""The replay's own rules, without a cloud: a type it does not map fails by name, and the
mocks' ids are told apart by type (a port and a server group may share a name)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests.openstack.replay import PORT, SERVER_GROUP, Declared, Replay


def test_an_unmapped_resource_type_fails_by_name() -> None:
    replay = Replay(cloud=cast(Any, None))
    with pytest.raises(AssertionError, match=r"openstack:dns/zone:Zone \(t1-zone\).*not map"):
        replay.create(Declared("openstack:dns/zone:Zone", "t1-zone", {}))


def test_references_are_resolved_by_type_and_name() -> None:
    replay = Replay(cloud=cast(Any, None))
    replay.ids[("openstack:networking/port:Port", "t1-login")] = "port-uuid"
    replay.ids[("openstack:compute/serverGroup:ServerGroup", "t1-login")] = "group-uuid"
    assert replay.ref("t1-login-id", PORT) == "port-uuid"
    assert replay.ref("t1-login-id", SERVER_GROUP) == "group-uuid"
    with pytest.raises(AssertionError, match="no secGroup"):
        replay.ref("t1-login-id", "secGroup:SecGroup")
