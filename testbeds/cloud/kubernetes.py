# pulumi-kubernetes types its inputs as TypedDicts; the objects here are plain dicts, checked
# against the official Kubernetes schemas (kubernetes-validate) by the tests instead.
# mypy: disable-error-code="call-overload,no-any-return"
"""The cloud-native side of a testbed on a site's Kubernetes cluster, as a Pulumi component.

Per testbed instance one namespace with Pod Security admission at `restricted`, a quota and
default limits from the site profile, a NetworkPolicy that denies all traffic and then the
allows each service needs, one service account per workload (no API token mounted), and
generated secrets. The workloads follow the definition's roles: `jupyterhub` becomes the
JupyterHub chart; `rucio` the Rucio server and daemon charts with a PostgreSQL of the
program's own; each `xrootd` node an XRootD StatefulSet with a persistent volume. Third-
party services come from upstream charts pinned in charts.py; the glue is typed resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from testbeds.cloud import charts
from testbeds.plan import Plan
from testbeds.schema import KubernetesSite

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
SMALL = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


@dataclass(frozen=True)
class KubernetesTestbedArgs:
    plan: Plan
    site: KubernetesSite


class KubernetesTestbed(pulumi.ComponentResource):
    """Namespace, policies, secrets and workloads of one testbed instance."""

    namespace: pulumi.Output[str]

    def __init__(
        self, name: str, args: KubernetesTestbedArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("testbeds:kubernetes:Testbed", name, None, opts)
        self._name, self._plan, self._site = name, args.plan, args.site
        self._child = pulumi.ResourceOptions(parent=self)
        roles = {role for node in args.plan.nodes for role in node.roles}
        ns = self._namespace()
        self._ns = ns.metadata.name
        self._policies()
        if "jupyterhub" in roles:
            self._jupyterhub()
        if "rucio" in roles:
            self._rucio()
        for node in (n for n in args.plan.nodes if "xrootd" in n.roles):
            self._xrootd(node.name)
        self.namespace = self._ns
        self.register_outputs({"namespace": self.namespace})

    def _meta(self, name: str, **labels: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self._ns,
            "labels": {"app.kubernetes.io/part-of": self._plan.instance, **labels},
        }

    def _namespace(self) -> k8s.core.v1.Namespace:
        ns = k8s.core.v1.Namespace(
            f"{self._name}-ns",
            metadata={
                "name": self._plan.instance,
                "labels": {
                    "app.kubernetes.io/part-of": self._plan.instance,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=self._child,
        )
        opts = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        k8s.core.v1.ResourceQuota(
            f"{self._name}-quota",
            metadata={"name": "testbed", "namespace": ns.metadata.name},
            spec={
                "hard": {
                    "requests.cpu": self._site.cpu_quota,
                    "requests.memory": self._site.memory_quota,
                    "limits.cpu": self._site.cpu_quota,
                    "limits.memory": self._site.memory_quota,
                }
            },
            opts=opts,
        )
        k8s.core.v1.LimitRange(
            f"{self._name}-limits",
            metadata={"name": "testbed", "namespace": ns.metadata.name},
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": SMALL["limits"],
                        "defaultRequest": SMALL["requests"],
                    }
                ]
            },
            opts=opts,
        )
        return ns

    def _policies(self) -> None:
        """Deny everything, then allow traffic inside the namespace, DNS, and the ports the
        definition exposes to the groups that expose them."""
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-default-deny",
            metadata=self._meta("default-deny"),
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            opts=self._child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-same-namespace",
            metadata=self._meta("same-namespace"),
            spec={
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [
                    {"to": [{"podSelector": {}}]},
                    {
                        "to": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                ],
            },
            opts=self._child,
        )
        for group in self._plan.definition.node_groups:
            if not group.expose:
                continue
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{group.name}-exposed",
                metadata=self._meta(f"{group.name}-exposed"),
                spec={
                    "podSelector": {"matchLabels": {"testbeds.wp5/node-group": group.name}},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "ports": [
                                {"protocol": p.protocol.upper(), "port": p.port}
                                for p in group.expose
                            ]
                        }
                    ],
                },
                opts=self._child,
            )

    def _service_account(self, workload: str) -> k8s.core.v1.ServiceAccount:
        return k8s.core.v1.ServiceAccount(
            f"{self._name}-{workload}",
            metadata=self._meta(workload),
            automount_service_account_token=False,
            opts=self._child,
        )

    def _secret(self, name: str, keys: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{self._name}-{name}",
            metadata=self._meta(name),
            string_data={k: pulumi.Output.secret(v) for k, v in keys.items()},
            opts=self._child,
        )

    def _password(self, name: str) -> random.RandomPassword:
        return random.RandomPassword(
            f"{self._name}-{name}", length=32, special=False, opts=self._child
        )

    def _release(self, name: str, chart: charts.Chart, values: dict[str, Any]) -> None:
        k8s.helm.v3.Release(
            f"{self._name}-{name}",
            name=name,
            namespace=self._ns,
            chart=chart.chart,
            version=chart.version,
            repository_opts={"repo": chart.repository},
            values=values,
            atomic=True,
            opts=self._child,
        )

    def _jupyterhub(self) -> None:
        sa = self._service_account("jupyterhub")
        token = self._password("jupyterhub-proxy-token")
        self._secret("jupyterhub-proxy", {"token": token.result})
        self._release(
            "jupyterhub",
            charts.JUPYTERHUB,
            {
                "hub": {
                    "serviceAccount": {"create": False, "name": sa.metadata.name},
                    "resources": SMALL,
                    "containerSecurityContext": RESTRICTED_CONTAINER,
                    "networkPolicy": {"enabled": True},
                },
                "proxy": {"secretToken": token.result, "chp": {"resources": SMALL}},
                "singleuser": {
                    "cpu": {"limit": 1, "guarantee": 0.1},
                    "memory": {"limit": "1G", "guarantee": "256M"},
                    "uid": 1000,
                },
                "scheduling": {"userScheduler": {"enabled": False}},
                "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
            },
        )

    def _rucio(self) -> None:
        db_password = self._password("rucio-db")
        root_password = self._password("rucio-root")
        db_url = pulumi.Output.concat(
            "postgresql+psycopg://rucio:", db_password.result, "@rucio-db/rucio"
        )
        self._secret("rucio-db", {"POSTGRES_PASSWORD": db_password.result, "url": db_url})
        self._secret("rucio-root", {"password": root_password.result})
        self._postgres("rucio-db", "rucio")
        self._service_account("rucio")
        common = {
            "serviceAccountName": "rucio",
            "resources": SMALL,
            "config": {"database": {"default": db_url}},
        }
        self._release("rucio-server", charts.RUCIO_SERVER, {**common, "replicaCount": 1})
        daemons = {
            "judgeEvaluatorCount": 1,
            "judgeRepairerCount": 1,
            "judgeCleanerCount": 1,
            "conveyorSubmitterCount": 1,
            "conveyorPollerCount": 1,
            "conveyorFinisherCount": 1,
            "reaperCount": 1,
        }
        self._release("rucio-daemons", charts.RUCIO_DAEMONS, {**common, **daemons})

    def _postgres(self, name: str, database: str) -> None:
        self._service_account(name)
        labels = {"app.kubernetes.io/name": name}
        k8s.core.v1.Service(
            f"{self._name}-{name}",
            metadata=self._meta(name, **labels),
            spec={"selector": labels, "ports": [{"port": 5432, "targetPort": 5432}]},
            opts=self._child,
        )
        self._stateful_set(
            name,
            labels,
            {
                "name": "postgresql",
                "image": self._site.images["postgresql"],
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

    def _xrootd(self, node: str) -> None:
        self._service_account(node)
        group = next(n.group for n in self._plan.nodes if n.name == node)
        labels = {"app.kubernetes.io/name": node, "testbeds.wp5/node-group": group}
        k8s.core.v1.Service(
            f"{self._name}-{node}",
            metadata=self._meta(node, **labels),
            spec={
                "selector": labels,
                "ports": [
                    {"name": "root", "port": 1094, "targetPort": 1094},
                    {"name": "https", "port": 8443, "targetPort": 8443},
                ],
            },
            opts=self._child,
        )
        self._stateful_set(
            node,
            labels,
            {
                "name": "xrootd",
                "image": self._site.images["xrootd"],
                "ports": [{"containerPort": 1094}, {"containerPort": 8443}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            run_as=10940,
            size="10Gi",
        )

    def _stateful_set(
        self, name: str, labels: dict[str, str], container: dict[str, Any], run_as: int, size: str
    ) -> None:
        claim: dict[str, Any] = {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }
        if self._site.storage_class:
            claim["spec"]["storageClassName"] = self._site.storage_class
        k8s.apps.v1.StatefulSet(
            f"{self._name}-{name}",
            metadata=self._meta(name, **labels),
            spec={
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsUser": run_as,
                            "runAsGroup": run_as,
                            "fsGroup": run_as,
                            "runAsNonRoot": True,
                        },  # fmt: skip
                        "containers": [
                            {
                                **container,
                                "resources": SMALL,
                                "securityContext": RESTRICTED_CONTAINER,
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [claim],
            },
            opts=self._child,
        )
