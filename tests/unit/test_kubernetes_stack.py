"""The Kubernetes Pulumi program under Pulumi's mocks (no cluster or Pulumi CLI here):
every object it creates directly is valid for the site's Kubernetes version
(kubernetes-validate, strict), and the objects follow the policies: restricted Pod
Security unless the namespace says why not, default-deny networking, requests and limits
everywhere, no privileged container or host path, no API token mounted unless listed
below with a reason, charts pinned, secrets generated and wired through Secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from testbeds.errors import DefinitionError
from testbeds.model.plan import resolve
from testbeds.targets.cloud.offline import RecordingMocks
from testbeds.targets.kubernetes.program.scope import POD_SECURITY_REASON
from testbeds.targets.kubernetes.program.workflow import SAMPLE
from tests.kubernetes_program import (
    CUSTOM,
    RELEASE,
    TESTBEDS,
    objects,
    of_kind,
    run_program,
    states,
)

# Service accounts that get an API token, and why.
TOKEN_EXCEPTIONS = {"interlink-vk": "a virtual kubelet registers its node and updates pods"}
CHARTS = {
    "data-movement": {"rucio-server", "rucio-daemons"},
    "hpc-access": {"jupyterhub"},
    "pipelines": {"argo-workflows", "minio", "registry"},
}


@pytest.fixture(scope="module", params=TESTBEDS)
def deployed(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingMocks]]:
    yield request.param, run_program(request.param)


@pytest.fixture(scope="module")
def pipelines_program() -> RecordingMocks:
    return run_program("pipelines")


def pod_specs(mocks: RecordingMocks) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, pod spec) of every workload the program defines itself."""
    return [
        (obj["metadata"]["namespace"], obj["spec"]["template"]["spec"])
        for obj in objects(mocks)
        if obj.get("kind") in ("StatefulSet", "Deployment")
    ]


def test_every_object_is_valid_for_the_sites_kubernetes(deployed: Any) -> None:
    """Each object validates strictly against the schema of the site's Kubernetes version."""
    testbed, mocks = deployed
    version = resolve(testbed, site="partner-a").site.kubernetes.kubernetes_version  # type: ignore[union-attr]
    created = objects(mocks)
    assert len(created) >= 8
    for obj in created:
        kubernetes_validate.validate(obj, f"{version}.0", strict=True)


def test_namespaces_are_restricted_unless_they_say_why(deployed: Any) -> None:
    testbed, mocks = deployed
    namespaces = {n["metadata"]["name"]: n["metadata"] for n in of_kind(mocks, "Namespace")}
    main = namespaces[f"{testbed}-k8s"]
    assert main["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for meta in namespaces.values():
        if meta["labels"]["pod-security.kubernetes.io/enforce"] != "restricted":
            assert len(meta["annotations"][POD_SECURITY_REASON]) > 40, meta["name"]
    quotas = {q["metadata"]["namespace"]: q for q in of_kind(mocks, "ResourceQuota")}
    limits = {q["metadata"]["namespace"] for q in of_kind(mocks, "LimitRange")}
    assert set(quotas) == limits == set(namespaces)
    assert quotas[f"{testbed}-k8s"]["spec"]["hard"]["requests.cpu"] == "32"


def test_network_is_denied_by_default(deployed: Any) -> None:
    _, mocks = deployed
    denied = {
        o["metadata"]["namespace"]
        for o in of_kind(mocks, "NetworkPolicy")
        if o["metadata"]["name"] == "default-deny"
        and o["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    }
    assert denied == {n["metadata"]["name"] for n in of_kind(mocks, "Namespace")}


def test_workloads_are_unprivileged_with_requests_and_limits(deployed: Any) -> None:
    """No privileged container, host path or host namespace anywhere; every container has
    requests and limits; in restricted namespaces every container runs as non-root with
    all capabilities dropped; API tokens only for TOKEN_EXCEPTIONS."""
    _, mocks = deployed
    levels = {
        n["metadata"]["name"]: n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for n in of_kind(mocks, "Namespace")
    }
    specs = pod_specs(mocks)
    assert specs
    for namespace, spec in specs:
        assert spec["automountServiceAccountToken"] is (
            spec["serviceAccountName"] in TOKEN_EXCEPTIONS
        )
        assert not any("hostPath" in v for v in spec.get("volumes", []))
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security.get("privileged") is not True
            assert security["allowPrivilegeEscalation"] is False
            assert "ALL" in security["capabilities"]["drop"]
            assert {"requests", "limits"} <= set(container["resources"])
            if levels[namespace] == "restricted":
                assert security["runAsNonRoot"] or spec["securityContext"]["runAsNonRoot"]
                assert set(security["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
    for account in of_kind(mocks, "ServiceAccount"):
        expected = account["metadata"]["name"] in TOKEN_EXCEPTIONS
        assert account["automountServiceAccountToken"] is expected


def test_charts_pinned_and_secrets_generated(deployed: Any) -> None:
    """Every chart comes from a named repository at an exact version; passwords, tokens
    and connection URLs are generated and reach the workloads through Secrets. (Whether a
    value arrives marked secret is not asserted: under Pulumi's mocks that marking is not
    reliable from one run to the next.)"""
    testbed, mocks = deployed
    releases = {r["name"]: r for r in states(mocks, RELEASE)}
    assert set(releases) == CHARTS[testbed]
    for release in releases.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", release["version"])
        assert release["repositoryOpts"]["repo"].startswith("https://")
    secrets = of_kind(mocks, "Secret")
    assert secrets
    for secret in secrets:
        for key, value in secret["stringData"].items():
            if re.search(r"password|token|url", key, re.IGNORECASE):
                assert re.search(r"generated-|token-from-login-node", str(value)), key


def cluster_roles(mocks: RecordingMocks) -> list[dict[str, Any]]:
    return of_kind(mocks, "ClusterRole")


def test_no_cluster_role_grants_secrets_and_no_service_is_exposed_unasked(deployed: Any) -> None:
    """No ClusterRole the program creates names `secrets` (or `*`); no Service it creates,
    nor the hub's proxy, is LoadBalancer or NodePort unless the site allows that type."""
    testbed, mocks = deployed
    for role in cluster_roles(mocks):
        for rule in role["rules"]:
            assert not {"secrets", "*"} & set(rule["resources"]), role["metadata"]["name"]
    allowed = set(resolve(testbed, site="partner-a").site.kubernetes.allowed_service_types)  # type: ignore[union-attr]
    for service in of_kind(mocks, "Service"):
        kind = service["spec"].get("type", "ClusterIP")
        assert kind == "ClusterIP" or kind in allowed, service["metadata"]["name"]
    for release in states(mocks, RELEASE):
        kind = release["values"].get("proxy", {}).get("service", {}).get("type", "ClusterIP")
        assert kind == "ClusterIP" or kind in allowed, release["name"]


def test_jupyterhub_lets_in_only_the_sites_issuer_groups() -> None:
    """A real authenticator (the site's OIDC issuer, groups it names), never `dummy` or
    allow_all; proxy and user servers admit no ingress from anywhere."""
    mocks = run_program("hpc-access")
    (hub,) = [r for r in states(mocks, RELEASE) if r["name"] == "jupyterhub"]
    config = hub["values"]["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert config["Authenticator"]["allow_all"] is False
    oauth = config["GenericOAuthenticator"]
    assert oauth["allowed_groups"] == ["wp5/hpc-users"]
    assert oauth["client_secret"] == "oauth-secret-from-site-file"
    assert oauth["authorize_url"].startswith("https://")
    assert hub["values"]["proxy"]["service"]["type"] == "ClusterIP"
    chp = hub["values"]["proxy"]["chp"]["networkPolicy"]
    assert chp["allowedIngressPorts"] == []
    for rule in chp["ingress"]:
        for peer in rule["from"]:
            assert peer["ipBlock"]["cidr"] not in ("0.0.0.0/0", "::/0")
    assert hub["values"]["singleuser"]["networkPolicy"]["allowedIngressPorts"] == []


def test_a_site_without_an_issuer_cannot_deploy_the_hub() -> None:
    """Without kubernetes.jupyterhub_oauth, hpc-access stops naming the field."""
    from testbeds.targets.kubernetes.site import kubernetes_site

    plan = resolve("hpc-access", site="partner-a")
    site = plan.site.model_copy(
        update={"kubernetes": plan.site.kubernetes.model_copy(update={"jupyterhub_oauth": None})}  # type: ignore[union-attr]
    )
    with pytest.raises(DefinitionError, match="kubernetes.jupyterhub_oauth"):
        kubernetes_site(replace(plan, site=site))


def test_a_site_without_a_storage_token_issuer_cannot_deploy_xrootd() -> None:
    """Without kubernetes.storage_token_issuer, data-movement stops naming the field."""
    from testbeds.targets.kubernetes.site import kubernetes_site

    plan = resolve("data-movement", site="partner-a")
    site = plan.site.model_copy(
        update={
            "kubernetes": plan.site.kubernetes.model_copy(update={"storage_token_issuer": None})
        }  # type: ignore[union-attr]
    )
    with pytest.raises(DefinitionError, match="kubernetes.storage_token_issuer"):
        kubernetes_site(replace(plan, site=site))


def test_xrootd_endpoints_follow_the_definition() -> None:
    """data-movement's three XRootD nodes become three StatefulSets with volumes; only the
    Rucio API is exposed (no policy admits anyone outside the namespace to the endpoints)."""
    mocks = run_program("data-movement")
    names = sorted(o["metadata"]["name"] for o in of_kind(mocks, "StatefulSet"))
    assert names == ["fts3-db", "hpc", "rucio-db", "site1", "site2"]
    exposed = [o for o in of_kind(mocks, "NetworkPolicy") if "exposed" in o["metadata"]["name"]]
    ports = {p["port"] for o in exposed for rule in o["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {443}
    for policy in exposed:
        for rule in policy["spec"]["ingress"]:
            assert [p["ipBlock"]["cidr"] for p in rule["from"]] == ["10.96.0.0/12"]


def test_xrootd_endpoints_accept_only_the_sites_storage_tokens() -> None:
    """Each endpoint runs with the configuration the local `xrootd` role writes, from the
    role's own templates: XrdSciTokens authorises every request against the site's issuer
    and this endpoint's own audience, the authorisation database below it grants nothing,
    root:// authenticates by token over TLS, and TLS uses a certificate the namespace's
    authority signed for the endpoint's Service."""
    mocks = run_program("data-movement")
    maps = {c["metadata"]["name"]: c["data"] for c in of_kind(mocks, "ConfigMap")}
    sets = {s["metadata"]["name"]: s for s in of_kind(mocks, "StatefulSet")}
    for node in ("hpc", "site1", "site2"):
        files = maps[f"{node}-xrootd"]
        config = files["xrootd.cfg"]
        for line in (
            "ofs.authorize 1",
            "ofs.authlib ++ libXrdAccSciTokens.so config=/etc/xrootd/wp5/scitokens.cfg",
            "acc.authdb /etc/xrootd/wp5/authdb",
            "sec.protocol ztn",
            "xrootd.tls all",
            "xrd.tls /etc/grid-security/xrd/hostcert.pem /etc/grid-security/xrd/hostkey.pem",
        ):
            assert f"\n{line}\n" in config, line
        assert "ofs.tpc" not in config
        scitokens = files["scitokens.cfg"]
        assert "issuer = https://iam.partner-a.example.org/\n" in scitokens
        assert f"audience = https://{node}.data-movement-k8s.svc:8443\n" in scitokens
        assert [x for x in files["authdb"].splitlines() if not x.startswith("#")] == []
        pod = sets[node]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["xrootd", "-c", "/etc/xrootd/wp5/xrootd.cfg", "-n", "wp5"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == f"{node}-xrootd"
        assert volumes["tls"]["secret"]["secretName"] == f"{node}-tls"
    requests = {name: state for name, state in mocks.of_type(":CertRequest")}
    assert requests["data-movement-k8s-site1-tls-request"]["dnsNames"][0] == "site1"


def test_rucio_and_fts3_run_in_their_own_namespace_and_reach_only_the_endpoints() -> None:
    """Rucio and FTS3 run in `<instance>-grid` (baseline, with the reason recorded);
    Rucio's conveyor submits to FTS3 there, and the grid namespace reaches only the
    XRootD endpoints' ports in the testbed's namespace, which admit it."""
    mocks = run_program("data-movement")
    (daemons,) = [r for r in states(mocks, RELEASE) if r["name"] == "rucio-daemons"]
    conveyor = daemons["values"]["config"]["conveyor"]
    assert conveyor["transfertool"] == "fts3"
    assert conveyor["ftshosts"] == "https://fts3.data-movement-k8s-grid.svc:8446"
    assert daemons["values"]["conveyorTransferSubmitterCount"] == 1
    assert daemons["namespace"] == "data-movement-k8s-grid"
    (fts3,) = [d for d in of_kind(mocks, "Deployment") if d["metadata"]["name"] == "fts3"]
    assert fts3["metadata"]["namespace"] == "data-movement-k8s-grid"
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(mocks, "NetworkPolicy")}
    (out,) = policies["grid-to-endpoints"]["egress"]
    assert {p["port"] for p in out["ports"]} == {1094, 8443}
    assert out["to"][0]["podSelector"] == {
        "matchLabels": {"testbeds.wp5/storage-endpoint": "xrootd"}
    }
    (into,) = policies["endpoints-from-grid"]["ingress"]
    assert into["from"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "data-movement-k8s-grid"}
            }
        }
    ]


def test_sample_workflow_runs_the_pipeline_file_in_order(pipelines_program: RecordingMocks) -> None:
    """The WorkflowTemplate has the sample's jobs in its order, each after the previous
    one succeeded; the gpu-tagged job asks for a GPU; every container is restricted with
    requests and limits; the registry password comes from a Secret."""
    (template,) = states(pipelines_program, CUSTOM)
    pipeline = yaml.safe_load((SAMPLE / ".wp5-pipeline.yml").read_text())["jobs"]
    spec = template["spec"]
    dag = next(t for t in spec["templates"] if t["name"] == "pipeline")["dag"]["tasks"]
    assert [t["name"] for t in dag] == [job["name"] for job in pipeline]
    assert [t.get("depends") for t in dag] == [None, "test.Succeeded", "train.Succeeded"]
    jobs = {t["name"]: t for t in spec["templates"] if "container" in t}
    for job in pipeline:
        container = jobs[job["name"]]["container"]
        assert container["args"][0].endswith("\n".join(job["script"]))
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert gpus == (1 if "gpu" in job.get("tags", []) else None)
        for part in (container, *jobs[job["name"]]["initContainers"]):
            assert part["securityContext"]["runAsNonRoot"] is True
            assert {"requests", "limits"} <= set(part["resources"])
        env = {e["name"]: e for e in container["env"]}
        assert (
            env["CI_REGISTRY_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
            == "registry-credentials"
        )
        assert "mlflow-skinny==3.17.2" in container["args"][0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert spec["arguments"]["parameters"][0]["value"].startswith("https://git.partner-a")


def test_pipeline_services_are_wired(pipelines_program: RecordingMocks) -> None:
    """Argo keeps to its namespace and stores artifacts in MinIO; MLflow reads its
    database URL and the MinIO keys from Secrets; the registry's htpasswd is a bcrypt hash
    of the generated password."""
    releases = {r["name"]: r["values"] for r in states(pipelines_program, RELEASE)}
    argo = releases["argo-workflows"]
    assert argo["singleNamespace"] is True
    assert argo["controller"]["workflowNamespaces"] == ["pipelines-k8s"]
    assert argo["artifactRepository"]["s3"]["accessKeySecret"]["name"] == "minio-root"
    assert (
        releases["registry"]["secrets"]["htpasswd"] == "ci:$2a$10$generated-pipelines-k8s-registry"
    )
    (mlflow,) = [
        d for d in of_kind(pipelines_program, "Deployment") if d["metadata"]["name"] == "mlflow"
    ]
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-db",
        "key": "url",
    }
    assert "--serve-artifacts" in mlflow["spec"]["template"]["spec"]["containers"][0]["args"]


def test_mlflow_speaks_only_https_and_lets_in_only_its_accounts(
    pipelines_program: RecordingMocks,
) -> None:
    """MLflow serves TLS with a certificate the namespace's authority signed for its Service
    names, through its basic-auth app whose default permission is none; an init container
    gives the jobs' account its generated password; the jobs reach MLflow over https, check
    its certificate against the authority and log in as that account, from a Secret."""
    (mlflow,) = [
        d for d in of_kind(pipelines_program, "Deployment") if d["metadata"]["name"] == "mlflow"
    ]
    pod = mlflow["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    env = {e["name"]: e for e in server["env"]}
    assert "--app-name=basic-auth" in server["args"]
    assert env["MLFLOW_UVICORN_OPTS"]["value"] == (
        "--ssl-keyfile=/etc/mlflow/tls/tls.key --ssl-certfile=/etc/mlflow/tls/tls.crt"
    )
    assert server["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "mlflow-tls"
    secrets = {s["metadata"]["name"]: s for s in of_kind(pipelines_program, "Secret")}
    tls_secret = secrets["mlflow-tls"]
    assert tls_secret["type"] == "kubernetes.io/tls"
    assert set(tls_secret["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    (request,) = [state for name, state in pipelines_program.of_type(":CertRequest")]
    assert request["dnsNames"] == [
        "mlflow",
        "mlflow.pipelines-k8s",
        "mlflow.pipelines-k8s.svc",
        "mlflow.pipelines-k8s.svc.cluster.local",
    ]
    (signed,) = [state for name, state in pipelines_program.of_type(":LocallySignedCert")]
    assert "server_auth" in signed["allowedUses"]
    (ca,) = [state for name, state in pipelines_program.of_type(":SelfSignedCert")]
    assert ca["isCaCertificate"] is True
    ini = secrets["mlflow-auth"]["stringData"]["basic_auth.ini"]
    assert "default_permission = NO_PERMISSIONS\n" in ini
    assert "admin_password = generated-pipelines-k8s-mlflow-admin\n" in ini
    (accounts,) = pod["initContainers"]
    assert accounts["command"][:2] == ["python", "-c"]
    account_env = {e["name"]: e for e in accounts["env"]}
    assert account_env["MLFLOW_JOB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-ci",
        "key": "password",
    }
    (template,) = states(pipelines_program, CUSTOM)
    for job in (t for t in template["spec"]["templates"] if "container" in t):
        job_env = {e["name"]: e for e in job["container"]["env"]}
        assert job_env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow:5000"
        assert job_env["MLFLOW_TRACKING_SERVER_CERT_PATH"]["value"] == "/etc/testbed-ca/ca.crt"
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert job_env[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-ci"
    (ca_map,) = [
        c for c in of_kind(pipelines_program, "ConfigMap") if c["metadata"]["name"] == "testbed-ca"
    ]
    assert ca_map["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")


def test_interlink_virtual_node_is_configured_from_site_and_definition() -> None:
    """The virtual kubelet points at the site's interLink endpoint, offers the Slurm
    compute nodes' capacity, presents the login node's token from a Secret, and may
    change only its own Node."""
    mocks = run_program("hpc-access")
    (config,) = [
        c for c in of_kind(mocks, "ConfigMap") if c["metadata"]["name"] == "interlink-vk-config"
    ]
    settings = yaml.safe_load(config["data"]["InterLinkConfig.yaml"])
    plan = resolve("hpc-access", site="partner-a")
    compute = [n for n in plan.nodes if "slurm_compute" in n.roles]
    assert settings["InterlinkURL"] == "https://login.hpc.partner-a.example.org"
    assert settings["InterlinkPort"] == "3443"
    assert settings["CPU"] == str(sum(n.traits.cpus for n in compute))
    (token,) = [
        s for s in of_kind(mocks, "Secret") if s["metadata"]["name"] == "interlink-vk-token"
    ]
    assert token["stringData"]["token"] == "token-from-login-node"
    (role,) = of_kind(mocks, "ClusterRole")
    for rule in role["rules"]:
        assert set(rule["resources"]) <= {"nodes", "nodes/status", "leases"}
        if rule["verbs"] != ["create"]:  # create cannot be limited by name
            assert rule["resourceNames"] == ["hpc-access-k8s-slurm"]
    (pods,) = [r for r in of_kind(mocks, "Role") if r["metadata"]["name"] == "interlink-vk"]
    assert pods["metadata"]["namespace"] == "hpc-access-k8s"
    assert {"pods", "secrets"} <= {res for rule in pods["rules"] for res in rule["resources"]}


def test_offloading_without_a_site_endpoint_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site whose kubernetes section lacks `interlink` stops hpc-access before anything
    is created, naming the file and field."""
    from testbeds.targets.kubernetes.site import kubernetes_site

    plan = resolve("hpc-access", site="partner-a")
    site = plan.site.model_copy(
        update={"kubernetes": plan.site.kubernetes.model_copy(update={"interlink": None})}
    )  # type: ignore[union-attr]
    with pytest.raises(DefinitionError) as error:
        kubernetes_site(replace(plan, site=site))
    assert "partner-a/site.yml" in str(error.value)
    assert "kubernetes.interlink.url" in str(error.value)


WORKLOADS = {
    "data-movement": ["FTS3", "Namespace", "Namespace", "Rucio", "XRootD", "XRootD", "XRootD"],
    "hpc-access": ["InterLink", "JupyterHub", "Namespace"],
    "pipelines": ["ArgoWorkflows", "MLflow", "MinIO", "Namespace", "Registry", "Workflow"],
}


def test_each_namespace_and_workload_is_a_component(deployed: Any) -> None:
    """The testbed is made of a component per namespace and one per workload in it."""
    testbed, mocks = deployed
    kinds = sorted(
        typ.removeprefix("testbeds:kubernetes:")
        for typ, _, _ in mocks.resources
        if typ.startswith("testbeds:kubernetes:") and typ != "testbeds:kubernetes:Testbed"
    )
    assert kinds == WORKLOADS[testbed]
