"""The Kubernetes Pulumi program under Pulumi's mocks (no cluster or Pulumi CLI here):
every object it creates directly is valid for the site's Kubernetes version
(kubernetes-validate, strict), and the objects follow the policies: restricted Pod
Security, default-deny networking, requests and limits everywhere, no privileged container
or host path, no API token mounted, charts pinned, secrets wired as secrets."""

from __future__ import annotations

import re
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pulumi = pytest.importorskip("pulumi", reason="the cloud extras are not installed")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from testbeds.plan import resolve  # noqa: E402
from tests.pulumi_mocks import RecordingMocks  # noqa: E402

PROGRAM = Path(__file__).resolve().parents[2] / "stacks" / "kubernetes" / "__main__.py"
RELEASE = "kubernetes:helm.sh/v3:Release"


def objects(mocks: RecordingMocks) -> list[dict[str, Any]]:
    """Kubernetes objects the program creates directly (not through a chart)."""
    return [
        state
        for typ, _, state in mocks.resources
        if typ.startswith("kubernetes:") and typ != RELEASE
    ]


def states(mocks: RecordingMocks, suffix: str) -> list[dict[str, Any]]:
    return [state for _, state in mocks.of_type(suffix)]


def run_program(testbed: str, site: str = "partner-a") -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="wp5-testbeds-kubernetes", stack="unit", preview=False)
    pulumi.runtime.set_all_config(
        {
            "wp5-testbeds-kubernetes:testbed": testbed,
            "wp5-testbeds-kubernetes:site": site,
            "wp5-testbeds-kubernetes:instance": f"{testbed}-k8s",
        }
    )

    @pulumi.runtime.test  # type: ignore[misc]
    def run() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    run()
    return mocks


@pytest.fixture(scope="module", params=["data-movement", "hpc-access"])
def deployed(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingMocks]]:
    yield request.param, run_program(request.param)


def pod_specs(mocks: RecordingMocks) -> list[dict[str, Any]]:
    return [
        obj["spec"]["template"]["spec"]
        for obj in objects(mocks)
        if obj.get("kind") in ("StatefulSet", "Deployment")
    ]


def test_every_object_is_valid_for_the_sites_kubernetes(deployed: Any) -> None:
    """Each object validates strictly against the schema of the site's Kubernetes version."""
    testbed, mocks = deployed
    version = resolve(testbed, site="partner-a").site.kubernetes.kubernetes_version  # type: ignore[union-attr]
    created = objects(mocks)
    assert len(created) >= 6
    for obj in created:
        kubernetes_validate.validate(obj, f"{version}.0", strict=True)


def test_namespace_is_restricted_and_bounded(deployed: Any) -> None:
    testbed, mocks = deployed
    (namespace,) = [o for o in objects(mocks) if o["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == f"{testbed}-k8s"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (quota,) = [o for o in objects(mocks) if o["kind"] == "ResourceQuota"]
    assert quota["spec"]["hard"]["requests.cpu"] == "32"
    assert [o for o in objects(mocks) if o["kind"] == "LimitRange"]


def test_network_is_denied_by_default(deployed: Any) -> None:
    _, mocks = deployed
    policies = {o["metadata"]["name"]: o for o in objects(mocks) if o["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_workloads_are_unprivileged_with_requests_and_limits(deployed: Any) -> None:
    """No privileged container, host path or host namespace; every container has requests
    and limits; no service-account token is mounted."""
    _, mocks = deployed
    for spec in pod_specs(mocks):
        assert spec["automountServiceAccountToken"] is False
        assert not any("hostPath" in v for v in spec.get("volumes", []))
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security.get("privileged") is not True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert {"requests", "limits"} <= set(container["resources"])
    for account in (o for o in objects(mocks) if o["kind"] == "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_charts_pinned_and_secrets_generated(deployed: Any) -> None:
    """Every chart comes from a named repository at an exact version; passwords are
    generated and reach the releases and Secrets, never a fixed string. (Whether a value
    arrives marked secret is not asserted: under Pulumi's mocks that marking is not
    reliable from one run to the next.)"""
    testbed, mocks = deployed
    releases = {r["name"]: r for r in states(mocks, RELEASE)}
    expected = {"data-movement": {"rucio-server", "rucio-daemons"}, "hpc-access": {"jupyterhub"}}
    assert set(releases) == expected[testbed]
    for release in releases.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", release["version"])
        assert release["repositoryOpts"]["repo"].startswith("https://")
        assert "resources" in str(release["values"])
    secrets = mocks.of_type("core/v1:Secret")
    assert secrets
    for _, secret in secrets:
        for value in secret["stringData"].values():
            assert str(value).startswith(("generated-", "postgresql+psycopg://"))


def test_xrootd_endpoints_follow_the_definition() -> None:
    """data-movement's three XRootD nodes become three StatefulSets with volumes and a
    policy admitting their two exposed ports."""
    mocks = run_program("data-movement")
    names = sorted(o["metadata"]["name"] for o in objects(mocks) if o["kind"] == "StatefulSet")
    assert names == ["hpc", "rucio-db", "site1", "site2"]
    exposed = [
        o
        for o in objects(mocks)
        if o["kind"] == "NetworkPolicy" and "exposed" in o["metadata"]["name"]
    ]
    ports = {p["port"] for o in exposed for rule in o["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {1094, 8443, 443}
