"""What the Kubernetes program would put on a cluster, charts included, checked offline.

No Kubernetes API server can run here, so the program runs under Pulumi's mocks and each
Helm release it asks for is rendered with `helm template` from the pinned upstream chart
(testbeds/targets/kubernetes/helm.py says where helm and the charts come from), with
exactly the values the program passes (generated secrets appear as the mocks'
placeholders) and the site's Kubernetes version. Everything is then validated strictly
against that version's schemas and held to the policies in tests/kubernetes_policies.py."""

from __future__ import annotations

import base64
import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from testbeds.cli import main
from testbeds.model.plan import resolve
from testbeds.targets.kubernetes.helm import Helm, HelmError, tools
from testbeds.targets.kubernetes.program.hpc_access import VIRTUAL_KUBELET
from testbeds.targets.kubernetes.site import KUBERNETES_IMAGES, KubernetesSite
from tests import kubernetes_policies as policy
from tests.kubernetes_program import (
    SITE,
    TESTBEDS,
    Release,
    custom_resources,
    objects,
    releases,
    run_program,
)
from tests.network_policies import Network, Pod, pods_of, with_addresses

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass",
}  # fmt: skip
# Cluster-wide RBAC a testbed may create, by name (after the instance), and why.
CLUSTER_RBAC_ALLOWED = {
    f"-{VIRTUAL_KUBELET}": "a virtual kubelet registers and updates its own Node and lease"
}
# Values passed under these paths are free-form maps the chart hands on as they are (the
# hub's traitlets config, Rucio's rucio.cfg sections), so their keys are not in the
# chart's values.yaml.
FREE_FORM = {
    ("hub", "config"): "JupyterHub traitlets configuration",
    ("config",): "rucio.cfg sections",
}
# Keys whose value the charts pass on verbatim as a Kubernetes field (checked against the
# Kubernetes schemas once rendered), so only the key itself must be one the chart reads.
KUBERNETES_FIELDS = {"resources", "securityContext", "containerSecurityContext"}


@dataclass
class Cluster:
    """Everything one testbed would send to a cluster."""

    testbed: str
    site: KubernetesSite
    releases: list[Release]
    rendered: dict[str, list[dict[str, Any]]]
    direct: list[dict[str, Any]]
    custom: list[dict[str, Any]]
    levels: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.site.kubernetes_version

    @property
    def everything(self) -> list[dict[str, Any]]:
        return [o for objs in self.rendered.values() for o in objs] + self.direct

    def workflow_pods(self) -> list[dict[str, Any]]:
        """The pods Argo makes of each job of the program's WorkflowTemplates."""
        return [pod for template in self.custom for pod in workflow_pods(template)]


def workflow_pods(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    pods = []
    for job in (t for t in spec["templates"] if "container" in t):
        init = [
            {k: v for k, v in c.items() if k != "mirrorVolumeMounts"}
            for c in job.get("initContainers", [])
        ]
        pod_spec = {
            "serviceAccountName": spec["serviceAccountName"],
            "automountServiceAccountToken": spec["automountServiceAccountToken"],
            "securityContext": spec["securityContext"],
            "volumes": spec.get("volumes", []),
            "initContainers": init,
            "containers": [{"name": "main", **job["container"]}],
        }
        if "tolerations" in job:
            pod_spec["tolerations"] = job["tolerations"]
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{template['metadata']['name']}-{job['name']}",
                    "namespace": template["metadata"]["namespace"],
                },
                "spec": pod_spec,
            }
        )
    return pods


@pytest.fixture(scope="session")
def helm() -> Helm:
    found = tools()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    if obj["kind"] not in CLUSTER_SCOPED:
        obj["metadata"].setdefault("namespace", namespace)
    return obj


@functools.cache
def build_cluster(testbed: str, helm: Helm) -> Cluster:
    site = resolve(testbed, site=SITE).site.kubernetes
    assert site is not None
    mocks = run_program(testbed)
    wanted = releases(mocks)
    rendered = {
        r.name: [in_namespace(o, r.namespace) for o in helm.template(r, site.kubernetes_version)]
        for r in wanted
    }
    direct = objects(mocks)
    levels = {
        n["metadata"]["name"]: n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for n in direct
        if n["kind"] == "Namespace"
    }
    return Cluster(testbed, site, wanted, rendered, direct, custom_resources(mocks), levels)


@pytest.fixture(params=TESTBEDS)
def cluster(request: pytest.FixtureRequest, helm: Helm) -> Cluster:
    return build_cluster(request.param, helm)


def test_every_release_renders_with_the_programs_values(cluster: Cluster) -> None:
    assert cluster.releases
    for release in cluster.releases:
        kinds = {o["kind"] for o in cluster.rendered[release.name]}
        assert kinds & {"Deployment", "StatefulSet"}, release.name


def test_the_hub_charts_schema_refuses_a_misspelled_key(helm: Helm) -> None:
    """z2jh ships a values schema: a key it does not know stops the render."""
    (hub,) = [r for r in releases(run_program("hpc-access")) if r.name == "jupyterhub"]
    values = copy.deepcopy(hub.values)
    values["hub"]["netwrokPolicy"] = {"enabled": True}
    bad = Release(hub.name, hub.chart, hub.version, hub.namespace, values)
    with pytest.raises(HelmError, match="netwrokPolicy"):
        helm.template(bad, "1.31")


def test_everything_is_valid_for_the_sites_kubernetes(cluster: Cluster) -> None:
    """Built-in kinds strictly against the site version's schemas; custom resources
    against their CRDs from the rendered charts, with fields the CRD does not declare
    refused (the API server would drop them silently); the pods Argo makes of the
    workflow's jobs as Pods."""
    crds = {
        (o["spec"]["group"], o["spec"]["names"]["kind"]): o
        for o in cluster.everything
        if o["kind"] == "CustomResourceDefinition"
    }
    for obj in cluster.everything + cluster.workflow_pods():
        kubernetes_validate.validate(obj, f"{cluster.version}.0", strict=True)
    for obj in cluster.custom:
        group, version = obj["apiVersion"].split("/")
        crd = crds[(group, obj["kind"])]
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        assert served["served"]
        jsonschema.validate(obj, closed(served["schema"]["openAPIV3Schema"]))


def closed(schema: Any) -> Any:
    """A CRD schema that refuses the fields the API server would prune."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: closed(v) for k, v in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        result.setdefault("additionalProperties", False)
    return result


def test_pod_security(cluster: Cluster) -> None:
    """Every pod template meets its namespace's Pod Security level: `restricted`, or
    `baseline` where the program records why."""
    problems = []
    for obj in cluster.everything + cluster.workflow_pods():
        for spec in policy.pod_specs(obj):
            level = cluster.levels[obj["metadata"]["namespace"]]
            problems += [f"{policy.name_of(obj)}: {p}" for p in policy.pod_security(spec, level)]
    assert problems == []


def test_no_service_is_reachable_from_outside_unless_the_site_allows(cluster: Cluster) -> None:
    assert policy.exposed_services(cluster.everything, cluster.site.allowed_service_types) == []


def test_no_network_policy_admits_ingress_from_anywhere(cluster: Cluster) -> None:
    assert policy.open_ingress(cluster.everything) == []


def test_cluster_wide_rbac_is_on_the_allow_list_and_never_grants_secrets(cluster: Cluster) -> None:
    instance = f"{cluster.testbed}-k8s"
    allowed = {instance + suffix for suffix in CLUSTER_RBAC_ALLOWED}
    assert policy.cluster_rbac(cluster.everything, allowed) == []


def test_images_are_pinned_and_the_site_can_override_them(cluster: Cluster) -> None:
    overridable = {cluster.site.image(key) for key in KUBERNETES_IMAGES}
    pods = cluster.everything + cluster.workflow_pods()
    assert list(policy.images(pods))
    assert policy.unpinned_images(pods, overridable) == []


def test_no_secret_is_on_a_command_line(cluster: Cluster) -> None:
    """No container of the program or of a chart gets a secret in its arguments: neither a
    generated value nor a site-provided one, nor a `$(VAR)` of a variable from a Secret
    (the MLflow database URL was one)."""
    generated = {
        v
        for obj in cluster.direct
        if obj["kind"] == "Secret"
        for v in (obj.get("stringData") or {}).values()
        if isinstance(v, str) and "generated-" in v
    }
    site_secrets = {"token-from-login-node", "oauth-secret-from-site-file"}
    pods = cluster.everything + cluster.workflow_pods()
    assert policy.secrets_on_command_lines(pods, generated | site_secrets) == []


def test_every_container_has_requests_and_limits(cluster: Cluster) -> None:
    assert policy.missing_resources(cluster.everything + cluster.workflow_pods()) == []


def test_values_are_keys_the_charts_read(cluster: Cluster, helm: Helm) -> None:
    """Every value the program passes is a key the chart reads: one of its values.yaml or
    one its templates name (`.Values.a.b`). Charts without a schema ignore a misspelled
    or invented key silently. Free-form maps (FREE_FORM) are not looked into."""
    unread = []
    for release in cluster.releases:
        chart = helm.chart_dir(release)
        defaults = yaml.safe_load((chart / "values.yaml").read_text())
        named = templates_read(chart)
        unread += [
            f"{release.name}: {'.'.join(path)}"
            for path in unknown_keys(release.values, defaults)
            if not any(read[: len(path)] == path for read in named)
        ]
    assert unread == []


def templates_read(chart: Path) -> set[tuple[str, ...]]:
    """The `.Values` paths a chart's templates name."""
    return {
        tuple(match.split("."))
        for template in (chart / "templates").rglob("*")
        if template.is_file()
        for match in re.findall(r"\.Values\.([A-Za-z0-9_.]+[A-Za-z0-9_])", template.read_text())
    }


def unknown_keys(
    values: Any, defaults: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Paths of `values` that are not in `defaults` (the chart's values.yaml)."""
    if (
        path in FREE_FORM
        or (path and path[-1] in KUBERNETES_FIELDS)
        or not isinstance(values, dict)
    ):
        return
    for key, value in values.items():
        if not isinstance(defaults, dict) or key not in defaults:
            yield (*path, key)
        elif defaults[key] != {}:
            yield from unknown_keys(value, defaults[key], (*path, key))


def hub_config(cluster: Cluster) -> dict[str, Any]:
    """The values the rendered hub reads at start (the chart's `hub` Secret)."""
    (secret,) = [
        o
        for o in cluster.rendered["jupyterhub"]
        if o["kind"] == "Secret" and o["metadata"]["name"] == "hub"
    ]
    return dict(yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"])))


def test_jupyterhub_admits_only_the_sites_users_and_spawns_restricted_pods(helm: Helm) -> None:
    """The rendered hub's authenticator is not `dummy` and does not let everyone in; the
    user servers it spawns meet `restricted` (no privileged iptables init container; the
    network policy blocks the cloud metadata server instead)."""
    cluster = build_cluster("hpc-access", helm)
    values = hub_config(cluster)
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] not in ("dummy", "null")
    assert config["Authenticator"]["allow_all"] is False
    assert config["GenericOAuthenticator"]["allowed_groups"]
    singleuser = values["singleuser"]
    assert singleuser["cloudMetadata"]["blockWithIptables"] is False
    assert singleuser["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    spawner = config["KubeSpawner"]
    user_pod = {
        "securityContext": spawner["pod_security_context"],
        "containers": [
            {"name": "notebook", "securityContext": spawner["container_security_context"]}
        ],
    }
    assert policy.pod_security(user_pod, cluster.levels[f"{cluster.testbed}-k8s"]) == []


# A user's server as KubeSpawner makes it from the chart's configuration (the pods exist only
# once users start them, so no chart renders one).
NOTEBOOK_LABELS = {
    "app": "jupyterhub",
    "release": "jupyterhub",
    "component": "singleuser-server",
    "app.kubernetes.io/component": "singleuser-server",
    "hub.jupyter.org/network-access-hub": "true",
}


def test_a_users_notebook_reaches_only_the_hubs_api(helm: Helm) -> None:
    """Under the rendered NetworkPolicies, a notebook pod opens no port of any pod of the
    testbed but the hub's API (8081, where the server checks its users' tokens): not the
    proxy's API, not the virtual kubelet, not another service (before, the namespace-wide
    allow let it reach them all). The hub and the proxy still reach the notebook, and
    nothing else does."""
    cluster = build_cluster("hpc-access", helm)
    network = Network(cluster.everything)
    services = pods_of(cluster.everything)
    namespace = next(p.namespace for p in services if p.name == "hub")
    notebook = Pod("jupyter-researcher", namespace, NOTEBOOK_LABELS, {"notebook-port": 8888})
    *services, notebook = with_addresses([*services, notebook])
    assert {p.name for p in services} >= {"hub", "proxy", VIRTUAL_KUBELET}
    reachable = {
        (p.name, port) for p in services for port in p.numbers if network.allows(notebook, p, port)
    }
    assert reachable == {("hub", 8081)}
    reaching = {p.name for p in services if network.allows(p, notebook, 8888)}
    assert reaching == {"hub", "proxy"}


def without_secret_digests(obj: dict[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(obj)
    template = found.get("spec", {}).get("template", {}).get("metadata", {})
    template.get("annotations", {}).pop("checksum/secret", None)
    return found


def identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    metadata = obj["metadata"]
    return (obj["kind"], metadata.get("namespace") or "", metadata["name"])


def test_show_manifests_writes_what_the_chart_tests_validate(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`testbed show NAME --target kubernetes --manifests DIR` writes one file per object,
    exactly the objects these tests validate (the program's own, its workflow templates and
    every release rendered from the pinned chart with the program's values), and no secret
    value: a Secret's data are placeholders. A folder already in use is refused."""
    folder = tmp_path / "manifests"
    argv = ["show", cluster.testbed, "--site", SITE, "--target", "kubernetes",
            "--instance", f"{cluster.testbed}-k8s", "--manifests", str(folder)]  # fmt: skip
    assert main(argv) == 0
    written = [yaml.safe_load(path.read_text()) for path in sorted(folder.iterdir())]
    assert len(written) == len(list(folder.iterdir()))
    validated = [*cluster.everything, *cluster.custom]
    assert sorted(map(identity, written)) == sorted(map(identity, validated))
    by_identity = {identity(obj): obj for obj in validated}
    for obj in written:
        if obj["kind"] != "Secret":
            # Charts stamp pods with a digest of their Secret's values, which differ here
            # (placeholders for what `testbed up` passes).
            expected = without_secret_digests(by_identity[identity(obj)])
            assert without_secret_digests(obj) == expected, identity(obj)
        else:
            values = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
            assert set(values.values()) <= {"<secret>"}, identity(obj)
    assert main(argv) == 2
    assert "not an empty folder" in capsys.readouterr().err
