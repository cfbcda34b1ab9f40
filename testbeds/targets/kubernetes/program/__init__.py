"""The cloud-native side of a testbed on a site's Kubernetes cluster, as a Pulumi component.

Per testbed instance one namespace (Pod Security `restricted`, a quota and default limits
from the site profile, a NetworkPolicy that denies all traffic and then the allows each
service needs, one service account per workload with no API token unless it needs one,
generated secrets). The workloads follow the definition's roles:

- `rucio` -> the Rucio server and daemon charts with a PostgreSQL of their own, and FTS3
  with MySQL, in a second namespace (see data_movement.GRID_POD_SECURITY);
- each `xrootd` node -> an XRootD StatefulSet with a persistent volume;
- `jupyterhub` -> the JupyterHub chart; `slurm_login` -> an interLink virtual node that
  runs pods as Slurm jobs on the hpc-access cluster;
- `buildbot_master` -> Argo Workflows with MinIO, MLflow with PostgreSQL, an OCI registry
  and the sample pipeline as a WorkflowTemplate.

Third-party services come from upstream charts pinned in charts.py; the glue is typed
resources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.networking.v1 import (
    NetworkPolicyIngressRuleArgs,
    NetworkPolicyPortArgs,
    NetworkPolicySpecArgs,
)

from testbeds.model.plan import Plan
from testbeds.targets.kubernetes.program import data_movement, hpc_access, pipelines
from testbeds.targets.kubernetes.program.scope import (
    NODE_GROUP,
    Namespace,
    NamespaceArgs,
    from_cidrs,
    selecting,
)
from testbeds.targets.kubernetes.site import KubernetesSite


@dataclass(frozen=True)
class KubernetesTestbedArgs:
    plan: Plan
    site: KubernetesSite
    # Bearer token the interLink virtual kubelet presents (hpc-access only).
    interlink_token: pulumi.Input[str] | None = None
    # JupyterHub's client secret at the site's OAuth issuer (hpc-access only).
    oauth_client_secret: pulumi.Input[str] | None = None


class KubernetesTestbed(pulumi.ComponentResource):
    """Namespaces, policies, secrets and workloads of one testbed instance."""

    namespace: pulumi.Output[str]

    def __init__(
        self, name: str, args: KubernetesTestbedArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("testbeds:kubernetes:Testbed", name, None, opts)
        plan, site = args.plan, args.site
        roles = plan.roles
        if "slurm_login" in roles and args.interlink_token is None:
            raise ValueError(f"{plan.name} offloads pods through interLink: pass interlink_token")
        main = Namespace(self, NamespaceArgs(plan, site, plan.instance))
        _exposed_ports(main)
        if "rucio" in roles:
            grid = Namespace(
                self,
                NamespaceArgs(
                    plan,
                    site,
                    f"{plan.instance}-grid",
                    pod_security="baseline",
                    reason=data_movement.GRID_POD_SECURITY,
                ),
            )
            data_movement.FTS3(grid)
            data_movement.Rucio(grid)
            data_movement.connect(grid, main)
        for node in (n for n in plan.nodes if "xrootd" in n.roles):
            if site.storage_token_issuer is None:
                raise ValueError(f"{plan.name} has XRootD endpoints: name their token issuer")
            data_movement.XRootD(
                main, data_movement.XRootDArgs(node.name, node.group, site.storage_token_issuer)
            )
        if "jupyterhub" in roles:
            if site.jupyterhub_oauth is None or args.oauth_client_secret is None:
                raise ValueError(f"{plan.name} has JupyterHub: pass its OAuth client secret")
            hpc_access.JupyterHub(
                main, hpc_access.JupyterHubArgs(site.jupyterhub_oauth, args.oauth_client_secret)
            )
        if "slurm_login" in roles and site.interlink and args.interlink_token is not None:
            hpc_access.InterLink(
                main, hpc_access.InterLinkArgs(site.interlink, args.interlink_token)
            )
        if "buildbot_master" in roles:
            pipelines.pipelines(main)
        self.namespace = main.ns
        self.register_outputs({"namespace": self.namespace})


def _exposed_ports(namespace: Namespace) -> None:
    """The ports the definition exposes, on the pods of the group, to the site's networks
    (`ingress_cidrs`: its ingress controller, say), never to anyone; without them the ports
    stay inside the namespace (reach them with `kubectl port-forward`)."""
    scope = namespace.scope
    peers = from_cidrs(scope.site.ingress_cidrs)
    for group in scope.plan.definition.node_groups:
        if not group.expose or not peers:
            continue
        scope.policy(
            f"{group.name}-exposed",
            NetworkPolicySpecArgs(
                pod_selector=selecting({NODE_GROUP: group.name}),
                policy_types=["Ingress"],
                ingress=[
                    NetworkPolicyIngressRuleArgs(
                        from_=peers,
                        ports=[
                            NetworkPolicyPortArgs(protocol=p.protocol.upper(), port=p.port)
                            for p in group.expose
                        ],
                    )
                ],
            ),
        )


def testbed_program(plan: Plan, given: Callable[[str], pulumi.Input[str]]) -> KubernetesTestbed:
    """The program for a plan (the stack's, and `testbed show --manifests`'s offline run).
    `given(name)` is what `testbed up` passes in, asked for only where the plan needs it:
    `interlinkToken` (made by the interlink role on the Slurm login node) and
    `jupyterhubOAuthSecret` (from the file the site profile names)."""
    from testbeds.targets.kubernetes.site import kubernetes_site

    site = kubernetes_site(plan)  # names the site.yml field that is missing, before anything
    return KubernetesTestbed(
        plan.instance,
        KubernetesTestbedArgs(
            plan=plan,
            site=site,
            interlink_token=given("interlinkToken") if "slurm_login" in plan.roles else None,
            oauth_client_secret=(
                given("jupyterhubOAuthSecret") if "jupyterhub" in plan.roles else None
            ),
        ),
    )
