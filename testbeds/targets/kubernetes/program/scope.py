"""One namespace of a testbed and the building blocks every workload in it uses.

`Namespace` is a component that creates the namespace with its Pod Security level, quota,
default limits and a NetworkPolicy that denies all traffic; its `scope` hands out the pieces
workloads are made of: service accounts (no API token unless asked for), generated
passwords, Secrets, Services, StatefulSets and Deployments with requests, limits and a
restricted security context, policies that open one path at a time, and pinned Helm
releases. Each workload is a `Workload`, a component of its own inside the namespace's.

Every object is built from pulumi_kubernetes' typed arguments. Helm releases take the
chart's values, which the charts define (their tests render them with the pinned charts):
those are plain mappings, `SMALL_VALUES` and `RESTRICTED_CONTAINER_VALUES` the same limits
and security context as the typed `SMALL` and `RESTRICTED_CONTAINER`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    ContainerArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    PodSecurityContextArgs,
    PodSpecArgs,
    ResourceRequirementsArgs,
    SeccompProfileArgs,
    SecretKeySelectorArgs,
    SecurityContextArgs,
    VolumeArgs,
)
from pulumi_kubernetes.meta.v1 import (
    LabelSelectorArgs,
    LabelSelectorRequirementArgs,
    ObjectMetaArgs,
)
from pulumi_kubernetes.networking.v1 import (
    NetworkPolicyEgressRuleArgs,
    NetworkPolicyIngressRuleArgs,
    NetworkPolicyPeerArgs,
    NetworkPolicyPortArgs,
    NetworkPolicySpecArgs,
)

from testbeds.model.plan import Plan
from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program import certificates
from testbeds.targets.kubernetes.site import KubernetesSite

RUNTIME_DEFAULT = SeccompProfileArgs(type="RuntimeDefault")
RESTRICTED_CONTAINER = SecurityContextArgs(
    allow_privilege_escalation=False,
    run_as_non_root=True,
    capabilities=CapabilitiesArgs(drop=["ALL"]),
    seccomp_profile=RUNTIME_DEFAULT,
)
SMALL_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
SMALL_LIMITS = {"cpu": "1", "memory": "1Gi"}
SMALL = ResourceRequirementsArgs(requests=SMALL_REQUESTS, limits=SMALL_LIMITS)
# The same, as chart values.
RESTRICTED_CONTAINER_VALUES: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
SMALL_VALUES = {"requests": SMALL_REQUESTS, "limits": SMALL_LIMITS}
PART_OF = "app.kubernetes.io/part-of"
NODE_GROUP = "testbeds.wp5/node-group"
# Why a namespace runs below `restricted`; the tests require it wherever the level is lower.
POD_SECURITY_REASON = "testbeds.wp5/pod-security-reason"
DNS_EGRESS = NetworkPolicyEgressRuleArgs(
    to=[NetworkPolicyPeerArgs(namespace_selector=LabelSelectorArgs())],
    ports=[
        NetworkPolicyPortArgs(protocol="UDP", port=53),
        NetworkPolicyPortArgs(protocol="TCP", port=53),
    ],
)
# Users' notebook servers (KubeSpawner labels them so) run code of any user: they are not
# part of "the namespace's own services", and get only what the JupyterHub chart's policy
# gives them (the hub's API, which checks their tokens, and the proxy's public port).
NOT_A_NOTEBOOK = LabelSelectorArgs(
    match_expressions=[
        LabelSelectorRequirementArgs(
            key="component", operator="NotIn", values=["singleuser-server"]
        )
    ]
)


@dataclass(frozen=True)
class Image:
    """An image the site profile names (KUBERNETES_IMAGES, in targets/kubernetes/site.py),
    split the ways charts ask for it."""

    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> Image:
        name, tag = ref.rsplit(":", 1)
        registry, repository = name.split("/", 1)
        return cls(registry, repository, tag)

    @property
    def name(self) -> str:
        """registry/repository, without the tag."""
        return f"{self.registry}/{self.repository}"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    def values(self, name_key: str = "repository") -> dict[str, str]:
        """`{repository: registry/repository, tag}`, or with the name under `name_key`."""
        return {name_key: self.name, "tag": self.tag}

    def parts(self) -> dict[str, str]:
        """`{registry, repository, tag}`, as the Argo chart asks for it."""
        return {"registry": self.registry, "repository": self.repository, "tag": self.tag}


def selecting(labels: dict[str, str]) -> LabelSelectorArgs:
    return LabelSelectorArgs(match_labels=labels)


def namespace_selector(scope: Scope) -> LabelSelectorArgs:
    """Selects the scope's namespace (by the name label Kubernetes gives every namespace)."""
    return selecting({"kubernetes.io/metadata.name": scope.ns})  # type: ignore[dict-item]


def in_namespace_of(scope: Scope) -> NetworkPolicyPeerArgs:
    """A peer selecting every pod of the scope's namespace."""
    return NetworkPolicyPeerArgs(namespace_selector=namespace_selector(scope))


def pod_security(run_as: int | None) -> PodSecurityContextArgs:
    """A pod's security context: the runtime's default seccomp profile and, unless
    `run_as` is None (an image that must start as root), that user and group, not root."""
    if run_as is None:
        return PodSecurityContextArgs(seccomp_profile=RUNTIME_DEFAULT)
    return PodSecurityContextArgs(
        seccomp_profile=RUNTIME_DEFAULT,
        run_as_user=run_as,
        run_as_group=run_as,
        fs_group=run_as,
        run_as_non_root=True,
    )


def from_cidrs(cidrs: list[str] | tuple[str, ...]) -> list[NetworkPolicyPeerArgs]:
    return [
        NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr)) for cidr in cidrs
    ]


def tcp_ports(ports: list[int]) -> list[NetworkPolicyPortArgs]:
    return [NetworkPolicyPortArgs(protocol="TCP", port=p) for p in ports]


def env(name: str, value: str) -> EnvVarArgs:
    return EnvVarArgs(name=name, value=value)


def env_from_secret(name: str, secret: str, key: str) -> EnvVarArgs:
    return EnvVarArgs(
        name=name,
        value_from=EnvVarSourceArgs(secret_key_ref=SecretKeySelectorArgs(name=secret, key=key)),
    )


@dataclass(frozen=True)
class NamespaceArgs:
    plan: Plan
    site: KubernetesSite
    name: str
    # Below `restricted` only with the reason, which the namespace carries as an annotation.
    pod_security: str = "restricted"
    reason: str = ""


class Namespace(pulumi.ComponentResource):
    """A namespace of one testbed instance: Pod Security level, quota, default limits, a
    policy denying all traffic but within the namespace's own services and DNS."""

    scope: Scope
    ns: pulumi.Output[str]

    def __init__(self, parent: pulumi.Resource, args: NamespaceArgs) -> None:
        super().__init__(
            "testbeds:kubernetes:Namespace", args.name, None, pulumi.ResourceOptions(parent=parent)
        )
        # The resources were children of the testbed component itself before namespaces and
        # workloads had components; the alias keeps them, unreplaced, in stacks made back then.
        moved = [pulumi.Alias(parent=parent)]
        annotations = {POD_SECURITY_REASON: args.reason} if args.reason else {}
        namespace = k8s.core.v1.Namespace(
            args.name,
            metadata=ObjectMetaArgs(
                name=args.name,
                labels={
                    PART_OF: args.plan.instance,
                    "pod-security.kubernetes.io/enforce": args.pod_security,
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
                annotations=annotations,
            ),
            opts=pulumi.ResourceOptions(parent=self, aliases=moved),
        )
        self.ns = namespace.metadata.name
        self.scope = Scope(self, namespace, moved, args.plan, args.site, args.name)
        self.scope.bounds()
        self.scope.policy(
            "default-deny",
            NetworkPolicySpecArgs(
                pod_selector=LabelSelectorArgs(), policy_types=["Ingress", "Egress"]
            ),
        )
        self.scope.policy(
            "same-namespace",
            NetworkPolicySpecArgs(
                pod_selector=NOT_A_NOTEBOOK,
                policy_types=["Ingress", "Egress"],
                ingress=[
                    NetworkPolicyIngressRuleArgs(
                        from_=[NetworkPolicyPeerArgs(pod_selector=NOT_A_NOTEBOOK)]
                    )
                ],
                egress=[
                    NetworkPolicyEgressRuleArgs(
                        to=[NetworkPolicyPeerArgs(pod_selector=NOT_A_NOTEBOOK)]
                    ),
                    DNS_EGRESS,
                ],
            ),
        )
        self.register_outputs({"name": self.ns})


class Workload(pulumi.ComponentResource):
    """A workload in a namespace: what it creates are children of this component, of type
    `testbeds:kubernetes:<kind>`."""

    kind: ClassVar[str]

    def __init__(self, namespace: Namespace, name: str) -> None:
        super().__init__(
            f"testbeds:kubernetes:{self.kind}",
            f"{namespace.scope.name}-{name}",
            None,
            pulumi.ResourceOptions(parent=namespace),
        )
        self.scope = namespace.scope.within(self)

    def done(self) -> None:
        self.register_outputs({})


class Scope:
    """A namespace as one component sees it: the resources it creates here are that
    component's children and wait for the namespace (and go before it on destroy)."""

    def __init__(
        self,
        component: pulumi.Resource,
        namespace: k8s.core.v1.Namespace,
        aliases: list[pulumi.Alias],
        plan: Plan,
        site: KubernetesSite,
        name: str,
    ) -> None:
        self.plan, self.site, self.name = plan, site, name
        self.ns: pulumi.Output[str] = namespace.metadata.name
        self.component = component
        self._namespace, self._aliases = namespace, aliases
        # Shared by this namespace's workload views (copies of this object).
        self._shared: dict[str, certificates.Authority] = {}
        self.opts = self._options(component)

    def _options(self, component: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=component, depends_on=[self._namespace], aliases=self._aliases
        )

    def within(self, component: pulumi.Resource) -> Scope:
        """This namespace as seen by a workload component inside it."""
        view = copy.copy(self)
        view.opts = self._options(component)
        return view

    def bounds(self) -> None:
        """The site's quota and the default requests and limits of a container."""
        k8s.core.v1.ResourceQuota(
            f"{self.name}-quota",
            metadata=ObjectMetaArgs(name="testbed", namespace=self.ns),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={
                    "requests.cpu": self.site.cpu_quota,
                    "requests.memory": self.site.memory_quota,
                    "limits.cpu": self.site.cpu_quota,
                    "limits.memory": self.site.memory_quota,
                }
            ),
            opts=self.opts,
        )
        k8s.core.v1.LimitRange(
            f"{self.name}-limits",
            metadata=ObjectMetaArgs(name="testbed", namespace=self.ns),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(
                        type="Container", default=SMALL_LIMITS, default_request=SMALL_REQUESTS
                    )
                ]
            ),
            opts=self.opts,
        )

    def image(self, key: str) -> Image:
        return Image.parse(self.site.image(key))

    def meta(self, name: str, **labels: str) -> ObjectMetaArgs:
        return ObjectMetaArgs(
            name=name, namespace=self.ns, labels={PART_OF: self.plan.instance, **labels}
        )

    def policy(self, name: str, spec: NetworkPolicySpecArgs) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{self.name}-{name}", metadata=self.meta(name), spec=spec, opts=self.opts
        )

    def allow_ingress(
        self, name: str, pods: dict[str, str], ports: list[int], peers: list[NetworkPolicyPeerArgs]
    ) -> None:
        """Admit traffic from these peers to these pods' ports."""
        self.policy(
            name,
            NetworkPolicySpecArgs(
                pod_selector=selecting(pods),
                policy_types=["Ingress"],
                ingress=[NetworkPolicyIngressRuleArgs(from_=peers, ports=tcp_ports(ports))],
            ),
        )

    def allow_egress(
        self, name: str, pods: dict[str, str], ports: list[int], peers: list[NetworkPolicyPeerArgs]
    ) -> None:
        """Let these pods open connections to these peers' ports."""
        self.policy(
            name,
            NetworkPolicySpecArgs(
                pod_selector=selecting(pods),
                policy_types=["Egress"],
                egress=[NetworkPolicyEgressRuleArgs(to=peers, ports=tcp_ports(ports))],
            ),
        )

    def authority(self) -> certificates.Authority:
        """The namespace's certificate authority, made when a first server asks for a
        certificate, with the ConfigMap `testbed-ca` its clients mount."""
        if "ca" not in self._shared:
            opts = self._options(self.component)
            ca = certificates.authority(self.name, self.plan.instance, opts)
            k8s.core.v1.ConfigMap(
                f"{self.name}-{certificates.CA_CONFIG_MAP}",
                metadata=self.meta(certificates.CA_CONFIG_MAP),
                data={certificates.CA_KEY: ca.certificate.cert_pem},
                opts=opts,
            )
            self._shared["ca"] = ca
        return self._shared["ca"]

    def tls_secret(self, service: str) -> str:
        """A key and certificate for the Service `service`, signed by the namespace's
        authority; returns the name of the `kubernetes.io/tls` Secret that holds them."""
        name = f"{service}-tls"
        certificates.server_certificate(
            f"{self.name}-{name}", self.authority(), service, self.meta(name), self.ns, self.opts
        )
        return name

    def service_account(self, name: str, token: bool = False) -> k8s.core.v1.ServiceAccount:
        return k8s.core.v1.ServiceAccount(
            f"{self.name}-{name}",
            metadata=self.meta(name),
            automount_service_account_token=token,
            opts=self.opts,
        )

    def password(self, name: str) -> random.RandomPassword:
        return random.RandomPassword(
            f"{self.name}-{name}", length=32, special=False, opts=self.opts
        )

    def secret(self, name: str, keys: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{self.name}-{name}",
            metadata=self.meta(name),
            string_data={k: pulumi.Output.secret(v) for k, v in keys.items()},
            opts=self.opts,
        )

    def config_map(self, name: str, data: pulumi.Input[dict[str, pulumi.Input[str]]]) -> None:
        k8s.core.v1.ConfigMap(
            f"{self.name}-{name}", metadata=self.meta(name), data=data, opts=self.opts
        )

    def service(self, name: str, labels: dict[str, str], ports: dict[str, int]) -> None:
        k8s.core.v1.Service(
            f"{self.name}-{name}",
            metadata=self.meta(name, **labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(name=n, port=p, target_port=p)
                    for n, p in ports.items()
                ],
            ),
            opts=self.opts,
        )

    def release(self, name: str, chart: charts.Chart, values: dict[str, Any]) -> None:
        """A release of a pinned chart; `values` are the chart's own."""
        k8s.helm.v3.Release(
            f"{self.name}-{name}",
            name=name,
            namespace=self.ns,
            chart=chart.chart,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
            values=values,
            atomic=True,
            opts=self.opts,
        )

    def pod_spec(
        self,
        account: str,
        containers: list[ContainerArgs],
        run_as: int | None,
        token: bool = False,
        volumes: list[VolumeArgs] | None = None,
        init_containers: list[ContainerArgs] | None = None,
    ) -> PodSpecArgs:
        """A pod spec whose containers all carry requests, limits and a security context
        (`SMALL` and `RESTRICTED_CONTAINER` where a container names none).

        `run_as=None` is for images that must start as root (only in a namespace whose
        Pod Security level says why); they still drop every capability they do not need."""
        return PodSpecArgs(
            service_account_name=account,
            automount_service_account_token=token,
            security_context=pod_security(run_as),
            containers=[bounded(c) for c in containers],
            init_containers=[bounded(c) for c in init_containers] if init_containers else None,
            volumes=volumes or None,
        )

    def stateful_set(
        self,
        name: str,
        labels: dict[str, str],
        container: ContainerArgs,
        run_as: int | None,
        size: str,
        volumes: list[VolumeArgs] | None = None,
    ) -> None:
        """One replica with a persistent volume `data` (of the site's storage class)."""
        claim = k8s.core.v1.PersistentVolumeClaimArgs(
            metadata=ObjectMetaArgs(name="data"),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": size}),
                storage_class_name=self.site.storage_class or None,
            ),
        )
        k8s.apps.v1.StatefulSet(
            f"{self.name}-{name}",
            metadata=self.meta(name, **labels),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=name,
                replicas=1,
                selector=selecting(labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=labels),
                    spec=self.pod_spec(name, [container], run_as, volumes=volumes),
                ),
                volume_claim_templates=[claim],
            ),
            opts=self.opts,
        )

    def deployment(self, name: str, labels: dict[str, str], spec: PodSpecArgs) -> None:
        k8s.apps.v1.Deployment(
            f"{self.name}-{name}",
            metadata=self.meta(name, **labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=selecting(labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=labels), spec=spec
                ),
            ),
            opts=self.opts,
        )

    def postgres(self, name: str, database: str) -> None:
        """A PostgreSQL of the program's own; its password is the Secret `name`'s
        POSTGRES_PASSWORD, which the caller creates."""
        self.service_account(name)
        labels = {"app.kubernetes.io/name": name}
        self.service(name, labels, {"postgresql": 5432})
        self.stateful_set(
            name,
            labels,
            ContainerArgs(
                name="postgresql",
                image=self.image("postgresql").ref,
                env=[
                    env("POSTGRES_DB", database),
                    env("POSTGRES_USER", database),
                    env("PGDATA", "/var/lib/postgresql/data/pgdata"),
                    env_from_secret("POSTGRES_PASSWORD", name, "POSTGRES_PASSWORD"),
                ],
                ports=[k8s.core.v1.ContainerPortArgs(container_port=5432)],
                volume_mounts=[
                    k8s.core.v1.VolumeMountArgs(name="data", mount_path="/var/lib/postgresql/data")
                ],
            ),
            run_as=999,
            size="5Gi",
        )


def bounded(container: ContainerArgs) -> ContainerArgs:
    """The container with `SMALL` resources and `RESTRICTED_CONTAINER` where it names none."""
    bounded = copy.copy(container)
    if container.resources is None:
        bounded.resources = SMALL
    if container.security_context is None:
        bounded.security_context = RESTRICTED_CONTAINER
    return bounded
