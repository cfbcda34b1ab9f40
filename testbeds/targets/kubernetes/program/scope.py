"""One namespace of a testbed and the building blocks every workload in it uses.

A Scope creates the namespace with its Pod Security level, quota, default limits and a
NetworkPolicy that denies all traffic, then hands out the pieces workloads are made of:
service accounts (no API token unless asked for), generated passwords, Secrets, Services,
StatefulSets and Deployments with requests, limits and a restricted security context,
policies that open one path at a time, and pinned Helm releases."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from testbeds.model.plan import Plan
from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program import certificates
from testbeds.targets.kubernetes.site import KubernetesSite

RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
SMALL = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
PART_OF = "app.kubernetes.io/part-of"
NODE_GROUP = "testbeds.wp5/node-group"
# Why a namespace runs below `restricted`; the tests require it wherever the level is lower.
POD_SECURITY_REASON = "testbeds.wp5/pod-security-reason"
DNS_EGRESS = {
    "to": [{"namespaceSelector": {}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
# Users' notebook servers (KubeSpawner labels them so) run code of any user: they are not
# part of "the namespace's own services", and get only what the JupyterHub chart's policy
# gives them (the hub's API, which checks their tokens, and the proxy's public port).
NOT_A_NOTEBOOK = {
    "matchExpressions": [{"key": "component", "operator": "NotIn", "values": ["singleuser-server"]}]
}


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


class Scope:
    """A namespace of one testbed instance (a component of its own) and the resources
    created in it; `workload()` gives each workload a component inside it.

    The resources were children of the testbed component itself before namespaces and
    workloads had components; the alias keeps them, unreplaced, in stacks made back then."""

    def __init__(
        self,
        parent: pulumi.Resource,
        plan: Plan,
        site: KubernetesSite,
        namespace: str,
        pod_security: str = "restricted",
        reason: str = "",
    ) -> None:
        self.plan, self.site, self.name = plan, site, namespace
        # Shared by this namespace's workload views (copies of this object).
        self._shared: dict[str, certificates.Authority] = {}
        self.component = pulumi.ComponentResource(
            "testbeds:kubernetes:Namespace",
            namespace,
            None,
            pulumi.ResourceOptions(parent=parent),
        )
        self._moved = [pulumi.Alias(parent=parent)]
        self.opts = pulumi.ResourceOptions(parent=self.component, aliases=self._moved)
        annotations = {POD_SECURITY_REASON: reason} if reason else {}
        ns = k8s.core.v1.Namespace(
            namespace,
            metadata={
                "name": namespace,
                "labels": {
                    PART_OF: plan.instance,
                    "pod-security.kubernetes.io/enforce": pod_security,
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
                "annotations": annotations,
            },
            opts=self.opts,
        )
        # Everything else in the namespace waits for it (and goes before it on destroy).
        self.ns = ns.metadata.name
        self._namespace = ns
        self.opts = self._within(self.component)
        self._bounds()
        self.policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        self.policy(
            "same-namespace",
            {
                "podSelector": NOT_A_NOTEBOOK,
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": NOT_A_NOTEBOOK}]}],
                "egress": [{"to": [{"podSelector": NOT_A_NOTEBOOK}]}, DNS_EGRESS],
            },
        )

    def _bounds(self) -> None:
        k8s.core.v1.ResourceQuota(
            f"{self.name}-quota",
            metadata={"name": "testbed", "namespace": self.ns},
            spec={
                "hard": {
                    "requests.cpu": self.site.cpu_quota,
                    "requests.memory": self.site.memory_quota,
                    "limits.cpu": self.site.cpu_quota,
                    "limits.memory": self.site.memory_quota,
                }
            },
            opts=self.opts,
        )
        k8s.core.v1.LimitRange(
            f"{self.name}-limits",
            metadata={"name": "testbed", "namespace": self.ns},
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": SMALL["limits"],
                        "defaultRequest": SMALL["requests"],
                    }
                ]
            },
            opts=self.opts,
        )

    def _within(self, component: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=component, depends_on=[self._namespace], aliases=self._moved
        )

    def workload(self, kind: str, name: str) -> Scope:
        """This namespace as seen by one workload: what it creates are children of a
        component `testbeds:kubernetes:<kind>` of its own."""
        component = pulumi.ComponentResource(
            f"testbeds:kubernetes:{kind}",
            f"{self.name}-{name}",
            None,
            pulumi.ResourceOptions(parent=self.component),
        )
        view = copy.copy(self)
        view.opts = self._within(component)
        return view

    def image(self, key: str) -> Image:
        return Image.parse(self.site.image(key))

    def meta(self, name: str, **labels: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.ns,
            "labels": {PART_OF: self.plan.instance, **labels},
        }

    def policy(self, name: str, spec: dict[str, Any]) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{self.name}-{name}", metadata=self.meta(name), spec=spec, opts=self.opts
        )

    def allow_ingress(
        self, name: str, pods: dict[str, str], ports: list[int], peers: list[dict[str, Any]]
    ) -> None:
        """Admit traffic from these peers (selectors) to these pods' ports."""
        self.policy(
            name,
            {
                "podSelector": {"matchLabels": pods},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": peers, "ports": [{"protocol": "TCP", "port": p} for p in ports]}
                ],
            },
        )

    def allow_egress(
        self, name: str, pods: dict[str, str], ports: list[int], peers: list[dict[str, Any]]
    ) -> None:
        """Let these pods open connections to these peers' ports."""
        self.policy(
            name,
            {
                "podSelector": {"matchLabels": pods},
                "policyTypes": ["Egress"],
                "egress": [{"to": peers, "ports": [{"protocol": "TCP", "port": p} for p in ports]}],
            },
        )

    def authority(self) -> certificates.Authority:
        """The namespace's certificate authority, made when a first server asks for a
        certificate, with the ConfigMap `testbed-ca` its clients mount."""
        if "ca" not in self._shared:
            opts = self._within(self.component)
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
            spec={
                "selector": labels,
                "ports": [{"name": n, "port": p, "targetPort": p} for n, p in ports.items()],
            },
            opts=self.opts,
        )

    def release(self, name: str, chart: charts.Chart, values: dict[str, Any]) -> None:
        k8s.helm.v3.Release(
            f"{self.name}-{name}",
            name=name,
            namespace=self.ns,
            chart=chart.chart,
            version=chart.version,
            repository_opts={"repo": chart.repository},
            values=values,
            atomic=True,
            opts=self.opts,
        )

    def pod_spec(
        self,
        account: str,
        containers: list[dict[str, Any]],
        run_as: int | None,
        token: bool = False,
        volumes: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A pod spec whose containers all carry requests, limits and a security context.

        `run_as=None` is for images that must start as root (only in a namespace whose
        Pod Security level says why); they still drop every capability they do not need."""
        security: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
        if run_as is not None:
            security |= {
                "runAsUser": run_as,
                "runAsGroup": run_as,
                "fsGroup": run_as,
                "runAsNonRoot": True,
            }
        spec: dict[str, Any] = {
            "serviceAccountName": account,
            "automountServiceAccountToken": token,
            "securityContext": security,
            "containers": [
                {"resources": SMALL, "securityContext": RESTRICTED_CONTAINER, **c}
                for c in containers
            ],
        }
        if volumes:
            spec["volumes"] = volumes
        return spec

    def stateful_set(
        self,
        name: str,
        labels: dict[str, str],
        container: dict[str, Any],
        run_as: int | None,
        size: str,
        volumes: list[dict[str, Any]] | None = None,
    ) -> None:
        """One replica with a persistent volume `data` (of the site's storage class)."""
        claim: dict[str, Any] = {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }
        if self.site.storage_class:
            claim["spec"]["storageClassName"] = self.site.storage_class
        k8s.apps.v1.StatefulSet(
            f"{self.name}-{name}",
            metadata=self.meta(name, **labels),
            spec={
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": self.pod_spec(name, [container], run_as, volumes=volumes),
                },
                "volumeClaimTemplates": [claim],
            },
            opts=self.opts,
        )

    def deployment(self, name: str, labels: dict[str, str], spec: dict[str, Any]) -> None:
        k8s.apps.v1.Deployment(
            f"{self.name}-{name}",
            metadata=self.meta(name, **labels),
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec},
            },
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
            {
                "name": "postgresql",
                "image": self.image("postgresql").ref,
                "env": [
                    {"name": "POSTGRES_DB", "value": database},
                    {"name": "POSTGRES_USER", "value": database},
                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                    {
                        "name": "POSTGRES_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": name, "key": "POSTGRES_PASSWORD"}},
                    },
                ],
                "ports": [{"containerPort": 5432}],
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
            },
            run_as=999,
            size="5Gi",
        )
