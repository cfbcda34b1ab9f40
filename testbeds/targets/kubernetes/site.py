"""The Kubernetes target's section of a site profile (`kubernetes:`): its cluster, what the
testbed may use there, and the images its workloads run; and a plan's section checked
before anything is created."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from testbeds.errors import DefinitionError, printable
from testbeds.model.fields import CIDR, NAME_PATTERN, FilePath, HttpsURL, Strict
from testbeds.model.loader import missing_site_section, site_dir

if TYPE_CHECKING:
    from testbeds.model.plan import Plan

# Every image the Kubernetes program runs, its own workloads' and the charts' alike. The
# tags are the ones these definitions are written for (for a chart, the one its release
# ships); a site overrides any of them under `kubernetes.images` (for a mirror, or a tag it
# has tested) and keeps the rest. Each is registry/repository:tag, never `latest`.
KUBERNETES_IMAGES: dict[str, str] = {
    "postgresql": "docker.io/library/postgres:15",
    "mysql": "docker.io/library/mysql:8.0",
    "xrootd": "docker.io/opensciencegrid/xrootd-standalone:23-release",
    "fts3": "gitlab-registry.cern.ch/fts/fts3:v3.14",
    "mlflow": "ghcr.io/mlflow/mlflow:v3.17.2-full",
    "ci_job": "docker.io/library/python:3.11-slim",
    "crane": "gcr.io/go-containerregistry/crane:debug",
    "interlink_vk": "ghcr.io/interlink-hq/interlink/virtual-kubelet-inttw:0.5.1",
    # Server and daemons share one database schema, so they run the same Rucio release
    # (the server chart's; the daemons chart ships an older one).
    "rucio_server": "docker.io/rucio/rucio-server:release-36.2.0",
    "rucio_daemons": "docker.io/rucio/rucio-daemons:release-36.2.0",
    "jupyterhub_hub": "quay.io/jupyterhub/k8s-hub:4.2.0",
    "jupyterhub_proxy": "quay.io/jupyterhub/configurable-http-proxy:4.6.3",
    "jupyterhub_singleuser": "quay.io/jupyterhub/k8s-singleuser-sample:4.2.0",
    "argo_controller": "quay.io/argoproj/workflow-controller:v3.6.2",
    "argo_executor": "quay.io/argoproj/argoexec:v3.6.2",
    "argo_server": "quay.io/argoproj/argocli:v3.6.2",
    "minio": "quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z",
    "minio_client": "quay.io/minio/mc:RELEASE.2024-11-21T17-21-54Z",
    "registry": "docker.io/library/registry:2.8.1",
}
# registry[:port]/repository:tag, the tag never `latest`.
IMAGE_PATTERN = r"^[a-z0-9.-]+(:[0-9]{1,5})?/[a-z0-9._/-]+:(?!latest$)[A-Za-z0-9._-]{1,128}$"


class InterLinkSite(Strict):
    """Where the cluster's virtual kubelet reaches the interLink API on the Slurm login node."""

    url: Annotated[str, Field(pattern=r"^https://[A-Za-z0-9.-]+$")] = Field(
        description="https://host of the login node's interLink endpoint (no port, no path)"
    )
    port: int = Field(default=3443, ge=1, le=65535, description="its TLS port")
    slurm_instance: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        default="hpc-access",
        description="the hpc-access instance whose login node runs the interLink API "
        "(its state holds the token the virtual kubelet presents)",
    )


class JupyterHubOAuth(Strict):
    """The site's OAuth2/OIDC issuer JupyterHub logs users in through (GenericOAuthenticator);
    nobody else gets in."""

    authorize_url: HttpsURL
    token_url: HttpsURL
    userdata_url: HttpsURL
    callback_url: HttpsURL = Field(description="the hub's public URL + /hub/oauth_callback")
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
    client_secret_file: FilePath = Field(
        description="file with the client secret; relative paths from the site folder"
    )
    username_claim: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$")] = "preferred_username"
    allowed_groups: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,128}$")], ...] = Field(
        min_length=1, description="groups (the token's `groups` claim) allowed to log in"
    )


class KubernetesSite(Strict):
    """Values the Kubernetes target needs from a site: its cluster and what it may use."""

    context: str | None = Field(default=None, description="kubeconfig context (default current)")
    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")] = Field(
        default="1.30", description="the cluster's minor version, which objects are checked against"
    )
    storage_class: str | None = Field(default=None, description="for persistent volumes")
    cpu_quota: str = Field(default="16", description="CPU the testbed's namespace may request")
    memory_quota: str = Field(default="64Gi", description="memory the namespace may request")
    images: dict[str, str] = Field(
        default_factory=dict,
        description="overrides of the workload images (keys as in KUBERNETES_IMAGES)",
    )
    interlink: InterLinkSite | None = Field(
        default=None, description="offloading pods to Slurm (hpc-access); required there"
    )
    pipeline_repository: str = Field(
        default="", description="git URL the sample workflow clones unless told otherwise"
    )
    allowed_service_types: tuple[Literal["LoadBalancer", "NodePort"], ...] = Field(
        default=(), description="Service types beyond ClusterIP the site allows"
    )
    jupyterhub_service_type: Literal["ClusterIP", "LoadBalancer", "NodePort"] = Field(
        default="ClusterIP", description="the hub proxy's Service (reach it by an ingress)"
    )
    ingress_cidrs: tuple[CIDR, ...] = Field(
        default=(), description="networks whose traffic may reach the hub's proxy"
    )
    api_server_cidrs: tuple[CIDR, ...] = Field(
        default=(),
        description="the API server's addresses, which call the interLink virtual kubelet "
        "(hpc-access) for pod logs; without them `kubectl logs` of offloaded pods fails",
    )
    jupyterhub_oauth: JupyterHubOAuth | None = Field(
        default=None, description="how users log in to JupyterHub (hpc-access); required there"
    )
    storage_token_issuer: HttpsURL | None = Field(
        default=None,
        description="the OIDC issuer whose storage tokens (WLCG profile) the XRootD endpoints "
        "accept (data-movement); required there",
    )

    @model_validator(mode="after")
    def _service_type_allowed(self) -> KubernetesSite:
        wanted = self.jupyterhub_service_type
        if wanted != "ClusterIP" and wanted not in self.allowed_service_types:
            raise ValueError(f"jupyterhub_service_type {wanted} is not in allowed_service_types")
        return self

    @field_validator("images")
    @classmethod
    def _known_images(cls, images: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(images) - set(KUBERNETES_IMAGES))
        if unknown:
            raise ValueError(f"unknown image key(s) {unknown}; known: {sorted(KUBERNETES_IMAGES)}")
        for key, image in images.items():
            if not re.match(IMAGE_PATTERN, image):
                raise ValueError(
                    f"{key}: {printable(image)} is not registry/repository:tag "
                    "with a tag other than latest"
                )
        return images

    def image(self, name: str) -> str:
        return self.images.get(name, KUBERNETES_IMAGES[name])


def kubernetes_site(plan: Plan) -> KubernetesSite:
    """The plan's Kubernetes site values, or an error naming the file and field."""
    site = plan.site.kubernetes
    if site is None:
        raise missing_site_section(plan.site.name, "kubernetes")
    roles = plan.roles
    # (what is missing, the role that needs it, the field that says it, why it is needed)
    required = (
        (site.interlink, "slurm_login", "kubernetes.interlink.url",
         f"{plan.name} offloads pods to its Slurm cluster through interLink, so the site "
         "must say where the login node's interLink endpoint is"),
        (site.jupyterhub_oauth, "jupyterhub", "kubernetes.jupyterhub_oauth",
         f"{plan.name}'s JupyterHub logs users in only through the site's OAuth2/OIDC issuer "
         "(the chart's default lets anyone in)"),
        (site.storage_token_issuer, "xrootd", "kubernetes.storage_token_issuer",
         f"{plan.name}'s XRootD endpoints grant nothing without a storage token, so the site "
         "must name the issuer whose tokens they accept"),
    )  # fmt: skip
    for value, role, field, why in required:
        if value is None and role in roles:
            raise DefinitionError(site_dir(plan.site.name) / "site.yml", field, f"missing: {why}")
    return site


def oauth_client_secret_file(plan: Plan) -> Path | None:
    """The file with JupyterHub's OAuth client secret, where the plan has a hub."""
    site = kubernetes_site(plan)
    if site.jupyterhub_oauth is None or not any("jupyterhub" in n.roles for n in plan.nodes):
        return None
    path = Path(site.jupyterhub_oauth.client_secret_file).expanduser()
    return path if path.is_absolute() else site_dir(plan.site.name) / path
