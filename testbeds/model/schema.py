"""Typed schema of testbed definitions and site profiles; every default lives here."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from testbeds.errors import printable

# Names become host names, Ansible group names and container names.
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
GROUP_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
# Node group names prefix node (host) names, so no underscore.
NODE_GROUP_PATTERN = r"^[a-z][a-z0-9]{0,20}$"

# Ansible variable names a definition may set (keys of `vars`).
VAR_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
# Connection, privilege and magic variables (ansible_*) and the tool's own (testbed_*):
# a definition that set them could point Ansible at another host or run it as another user.
RESERVED_VAR_PREFIXES = ("ansible_", "testbed_")
# Login names on nodes and bastions (POSIX portable, as useradd takes them).
USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
# Mirror URLs reach a shell script (quoted) and apt's sources.list: no quotes or spaces.
MIRROR_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+/-]*)?$"


def check_host(value: str) -> str:
    """A host name or an IP address, nothing else (no options, no spaces, no quotes)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_NAME.match(value):
        raise ValueError(f"{value[:60]!r} is not a host name or IP address")
    return value


def _file_path(value: str) -> str:
    """A path written into ssh_config: printable, no quotes, no ssh %-tokens."""
    if not value or any(c in value for c in '"%') or not value.isprintable():
        raise ValueError("must be a file path without quotes, '%' or control characters")
    return value


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
HostName = Annotated[str, AfterValidator(check_host)]
UserName = Annotated[str, Field(pattern=USER_PATTERN)]
FilePath = Annotated[str, AfterValidator(_file_path)]
IPAddress = Annotated[str, AfterValidator(lambda v: str(ipaddress.ip_address(v)))]
TargetName = Literal["local", "openstack", "kubernetes", "static"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scratch(Strict):
    """Node-local scratch (NVMe/SSD): each job gets its own directory there, removed at its end."""

    size_gb: int = Field(ge=1, le=1_000_000, description="size Slurm advertises as TmpDisk")
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_/.-]+$")] = "/scratch"


class Traits(Strict):
    """Hardware a node of the group has (or, on the local target, emulates)."""

    cpus: int = Field(default=1, ge=1, le=1024, description="CPU cores Slurm may schedule")
    memory_mb: int = Field(default=1024, ge=256, description="memory Slurm may schedule, in MB")
    gpus: int = Field(default=0, ge=0, le=16, description="GPUs per node")
    gpu_model: str = Field(default="", pattern=r"^[a-z0-9_]*$", description="GRES type, e.g. a100")
    infiniband: bool = Field(default=False, description="node has (or expects) an InfiniBand HCA")
    fpgas: int = Field(default=0, ge=0, le=16, description="FPGA cards per node")
    fpga_model: str = Field(default="", pattern=r"^[a-z0-9_]*$", description="GRES type, e.g. u250")
    scratch: Scratch | None = Field(default=None, description="node-local scratch disk")
    features: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")], ...] = ()

    @model_validator(mode="after")
    def _model_needs_devices(self) -> Traits:
        if self.gpu_model and self.gpus == 0:
            raise ValueError("gpu_model is set but gpus is 0")
        if self.fpga_model and self.fpgas == 0:
            raise ValueError("fpga_model is set but fpgas is 0")
        return self

    def notes(self, hardware_notes: Mapping[str, str]) -> list[str]:
        """What a target says about the hardware traits this group has (e.g. emulated)."""
        return [
            hardware_notes[trait]
            for trait in HARDWARE_TRAITS
            if trait in hardware_notes and getattr(self, trait)
        ]


# Traits a target may have to emulate, by name (plan and graph list what each group has).
HARDWARE_TRAITS = ("gpus", "fpgas", "infiniband", "scratch")


class ExposedPort(Strict):
    """A service port users reach from outside the testbed (opened only where declared)."""

    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    description: str = ""


class NodeGroup(Strict):
    """A set of identical nodes: same roles, same traits."""

    name: Annotated[str, Field(pattern=NODE_GROUP_PATTERN)]
    description: str = ""
    max: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="elastic group: Slurm knows this many nodes from the start; those beyond "
        "`count` are started when jobs wait for them and removed when idle (power saving)",
    )
    count: int = Field(
        default=1, ge=0, le=256, description="nodes always running (0 only in an elastic group)"
    )
    roles: tuple[Annotated[str, Field(pattern=GROUP_NAME_PATTERN)], ...] = Field(min_length=1)
    traits: Traits = Traits()
    anti_affinity: bool = Field(
        default=False, description="spread the group's nodes over different hypervisors"
    )
    expose: tuple[ExposedPort, ...] = Field(
        default=(), description="ports reachable from the site's allowed networks"
    )
    vars: dict[Annotated[str, Field(pattern=VAR_NAME_PATTERN)], Any] = Field(
        default_factory=dict,
        description="Ansible variables for this group's nodes only (over the testbed's vars)",
    )

    @field_validator("vars")
    @classmethod
    def _no_reserved_group_vars(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _no_reserved(values)

    @field_validator("roles")
    @classmethod
    def _roles_unique(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({r for r in roles if roles.count(r) > 1})
        if dupes:
            raise ValueError(f"role listed twice: {', '.join(dupes)}")
        return roles

    @field_validator("count")
    @classmethod
    def _below_max(cls, count: int, info: ValidationInfo) -> int:
        # `max` is declared first, so it is known here (unless it was refused itself).
        maximum = info.data.get("max")
        if maximum is None and "max" in info.data and count == 0:
            raise ValueError("0 nodes needs max (an elastic group) or at least 1")
        if maximum is not None and count >= maximum:
            raise ValueError(f"{count} is not below max ({maximum}): no node would be elastic")
        return count

    @property
    def elastic(self) -> bool:
        return self.max is not None

    def node_names(self) -> list[str]:
        """Every node of the group: those always running, then the elastic ones."""
        if self.max is None and self.count == 1:
            return [self.name]
        return [f"{self.name}{i}" for i in range(1, (self.max or self.count) + 1)]

    def static_node_names(self) -> list[str]:
        """The nodes `up` starts and keeps running."""
        return self.node_names()[: self.count]

    def elastic_node_names(self) -> list[str]:
        """The nodes Slurm starts when jobs wait for them and stops when they idle."""
        return self.node_names()[self.count :]


class SharedFilesystem(Strict):
    """A directory every node sees: a podman volume locally, NFS from `server` elsewhere."""

    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_/.-]+$")]
    server: str = Field(
        description="node group that serves it where the target has no shared volume"
    )
    size_gb: int = Field(default=10, ge=1)


def _no_reserved(values: dict[str, Any]) -> dict[str, Any]:
    reserved = sorted(k for k in values if k.startswith(RESERVED_VAR_PREFIXES))
    if reserved:
        raise ValueError(
            f"{reserved[0]!r} may not be set by a definition: ansible_* (connection, "
            "privilege) and testbed_* variables are the tool's"
        )
    return values


class Include(Strict):
    """Another testbed whose node groups this one takes in (composition)."""

    testbed: Name = Field(description="a shipped testbed definition, by name")
    node_groups: tuple[Annotated[str, Field(pattern=NODE_GROUP_PATTERN)], ...] = Field(
        default=(), description="the groups taken in (default: all of them)"
    )


GroupName = Annotated[str, Field(pattern=NODE_GROUP_PATTERN)]


class Link(Strict):
    """Traffic a composition lets through between node groups of different included
    testbeds: the `from` groups' nodes may open these ports on the `to` group's nodes.
    Groups of one testbed reach each other freely; across testbeds only links pass (where
    the target filters: security groups on OpenStack)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sources: tuple[GroupName, ...] = Field(alias="from", min_length=1)
    to: GroupName
    ports: tuple[ExposedPort, ...] = Field(min_length=1)
    description: str = ""


class TestbedDefinition(Strict):
    """One testbed, the single source of truth every target derives from."""

    __test__ = False

    name: Name
    description: str
    checks: tuple[Annotated[str, Field(pattern=GROUP_NAME_PATTERN)], ...] = Field(min_length=1)
    entry: str = Field(description="node group users log in to (bastion / floating IP)")
    node_groups: tuple[NodeGroup, ...] = Field(min_length=1)
    shared_filesystems: tuple[SharedFilesystem, ...] = ()
    vars: dict[Annotated[str, Field(pattern=VAR_NAME_PATTERN)], Any] = Field(
        default_factory=dict, description="Ansible variables for every node (sites may override)"
    )
    include: tuple[Include, ...] = Field(
        default=(),
        description="testbeds composed into this one: one network, CA, identity and inventory",
    )
    links: tuple[Link, ...] = Field(
        default=(),
        description="what passes between the included testbeds' node groups (composition)",
    )

    @field_validator("vars")
    @classmethod
    def _no_reserved_vars(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _no_reserved(values)

    def origin(self, group: str) -> str:
        """The included testbed a node group comes from, or this testbed's own name."""
        for included in self.include:
            if group in included.node_groups:
                return included.testbed
        return self.name

    def _elastic_groups_serve_nobody(self) -> None:
        """Nodes of an elastic group come and go: nothing else may depend on them."""
        for group in self.node_groups:
            if not group.elastic:
                continue
            where = f"node_groups[{group.name}].max"
            if group.name == self.entry:
                raise ValueError(f"{where}: the entry group (users log in there) cannot be elastic")
            served = [fs.path for fs in self.shared_filesystems if fs.server == group.name]
            if served:
                raise ValueError(f"{where}: an elastic group cannot serve {served[0]}")
            if any(link.to == group.name for link in self.links):
                raise ValueError(
                    f"{where}: a link leads to this group; an elastic group serves nobody"
                )
            if "slurm_compute" not in group.roles:
                raise ValueError(
                    f"{where}: only Slurm compute nodes can be elastic (Slurm starts and "
                    "stops them); add the role slurm_compute or drop max"
                )

    @model_validator(mode="after")
    def _names_consistent(self) -> TestbedDefinition:
        groups = [g.name for g in self.node_groups]
        dupes = sorted({g for g in groups if groups.count(g) > 1})
        if dupes:
            raise ValueError(f"node_groups: node group name used twice: {', '.join(dupes)}")
        seen: dict[str, str] = {}
        for group in self.node_groups:
            for node in group.node_names():
                if node in seen:
                    raise ValueError(
                        f"node_groups: node name {node!r} of group {group.name!r} clashes with "
                        f"group {seen[node]!r}"
                    )
                seen[node] = group.name
        role_names = {r for g in self.node_groups for r in g.roles}
        clash = role_names & set(groups)
        if clash:
            raise ValueError(
                f"node_groups: node group named like a role: {', '.join(sorted(clash))}"
            )
        if self.entry not in groups:
            raise ValueError(f"entry: {self.entry!r} is not a node group ({', '.join(groups)})")
        self._elastic_groups_serve_nobody()
        if self.links and not self.include:
            raise ValueError(
                "links: links join included testbeds, and this definition includes none"
            )
        for link in self.links:
            unknown = sorted({link.to, *link.sources} - set(groups))
            if unknown:
                raise ValueError(f"links: link to {link.to}: no node group {unknown[0]!r}")
        paths = [fs.path for fs in self.shared_filesystems]
        for fs in self.shared_filesystems:
            if fs.server not in groups:
                raise ValueError(
                    f"shared_filesystems: {fs.path}: server {fs.server!r} is not a node group"
                )
            if paths.count(fs.path) > 1:
                raise ValueError(f"shared_filesystems: {fs.path} listed twice")
        # Slurm has one TmpFS for the whole cluster.
        scratch_paths = sorted(
            {g.traits.scratch.path for g in self.node_groups if g.traits.scratch}
        )
        if len(scratch_paths) > 1:
            raise ValueError(
                f"node_groups: scratch paths differ between groups: {', '.join(scratch_paths)}"
            )
        if scratch_paths and scratch_paths[0] in paths:
            raise ValueError(
                f"node_groups: scratch path {scratch_paths[0]} is also a shared filesystem"
            )
        return self


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value[:60]!r} is not a network in CIDR notation") from None
    return value


CIDR = Annotated[str, Field(pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"), AfterValidator(_cidr)]


class LocalSite(Strict):
    """Values the local podman target needs from a site."""

    debian_mirror: Annotated[str, Field(pattern=MIRROR_PATTERN)]
    debian_suite: Literal["bookworm"] = "bookworm"
    network_subnet: CIDR | None = Field(
        default=None, description="CIDR for the testbed network; podman picks one when unset"
    )


class OpenStackSite(Strict):
    """Values the OpenStack target needs from a site: what its cloud calls things."""

    cloud: str = Field(description="entry in clouds.yaml (as OS_CLOUD would name it)")
    external_network: str = Field(description="network floating IPs and the router use")
    image: str = Field(description="Debian 12 image every node boots")
    flavor: str = Field(description="flavor of nodes whose group has no entry in flavors")
    flavors: dict[str, str] = Field(default_factory=dict, description="flavor per node group")
    gpu_flavor: str | None = Field(default=None, description="flavor of groups with gpus > 0")
    infiniband_network: str | None = Field(
        default=None, description="provider network of the IB/RoCE fabric, for infiniband groups"
    )
    infiniband_vnic_type: Literal["direct", "direct-physical", "macvtap", "normal"] = "direct"
    allowed_ssh_cidrs: tuple[CIDR, ...] = Field(
        min_length=1, description="networks allowed to reach the entry node over SSH"
    )
    allowed_service_cidrs: tuple[CIDR, ...] = Field(
        default=(), description="networks allowed to reach exposed ports (default: the SSH ones)"
    )
    subnet_cidr: CIDR = "10.42.0.0/24"
    dns_nameservers: tuple[IPAddress, ...] = ()
    ssh_user: UserName = Field(default="debian", description="login user of the image")
    volume_type: str | None = None


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


HttpsURL = Annotated[
    str, Field(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+/-]*)?$")
]


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


# A proxy or package index by address only: no user:password@ (it would sit in node files).
ProxyURL = Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")]
NoProxyEntry = Annotated[str, Field(pattern=r"^\.?[A-Za-z0-9.:/-]{1,253}$")]


class PackageSources(Strict):
    """How nodes reach package repositories at a site that is offline or behind a proxy: apt
    and pip on every node use these (the local target's base image takes its Debian mirror
    from `local.debian_mirror`)."""

    http_proxy: ProxyURL | None = Field(default=None, description="proxy for http:// downloads")
    https_proxy: ProxyURL | None = Field(
        default=None, description="proxy for https:// downloads (default: http_proxy)"
    )
    no_proxy: tuple[NoProxyEntry, ...] = Field(
        default=(), description="hosts, domains (.example.org) and networks reached directly"
    )
    pip_index_url: Annotated[str, Field(pattern=MIRROR_PATTERN)] | None = Field(
        default=None, description="a PyPI mirror (its /simple URL) pip uses instead of pypi.org"
    )

    def as_role_vars(self) -> dict[str, object]:
        return {
            "common_http_proxy": self.http_proxy or "",
            "common_https_proxy": self.https_proxy or self.http_proxy or "",
            "common_no_proxy": list(self.no_proxy),
            "common_pip_index_url": self.pip_index_url or "",
        }


class SiteProfile(Strict):
    """Site-specific values layered on top of a definition (inventories/<site>/site.yml)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    default_target: TargetName = "local"
    local: LocalSite | None = None
    openstack: OpenStackSite | None = None
    static: StaticSite | None = None
    kubernetes: KubernetesSite | None = None
    packages: PackageSources = Field(default_factory=PackageSources)


def valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None
