"""hpc-access on Kubernetes: JupyterHub (upstream chart) for interactive analysis, and a
virtual node backed by the hpc-access Slurm cluster through interLink.

The interLink virtual kubelet runs here; the interLink API and its Slurm plugin run on the
Slurm login node (the `interlink` role). A pod that tolerates the virtual node's taint and
selects it is sent to the API and runs as a Slurm job. The kubelet presents a bearer
token the login node generated (passed in as the stack's `interlinkToken` secret)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_kubernetes.core.v1 import (
    ConfigMapVolumeSourceArgs,
    ContainerArgs,
    ContainerPortArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    ObjectFieldSelectorArgs,
    SecretVolumeSourceArgs,
    VolumeArgs,
    VolumeMountArgs,
)
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.rbac.v1 import PolicyRuleArgs, RoleRefArgs, SubjectArgs

from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program.scope import (
    PART_OF,
    RESTRICTED_CONTAINER_VALUES,
    SMALL_VALUES,
    Namespace,
    Scope,
    Workload,
    env,
    from_cidrs,
)
from testbeds.targets.kubernetes.site import InterLinkSite, JupyterHubOAuth

VIRTUAL_KUBELET = "interlink-vk"
KUBELET_PORT = 10250


@dataclass(frozen=True)
class JupyterHubArgs:
    oauth: JupyterHubOAuth
    client_secret: pulumi.Input[str]


class JupyterHub(Workload):
    """The hub starts each user's server as a pod, so it needs the API: the chart gives its
    own service account a Role limited to this namespace (pods, PVCs, events).

    Users log in only through the site's OAuth2/OIDC issuer, in the groups it names (the
    chart's default authenticator lets anyone in). The proxy's Service is ClusterIP unless
    the site allows another type, and its NetworkPolicy admits only the site's networks."""

    kind = "JupyterHub"

    def __init__(self, namespace: Namespace, args: JupyterHubArgs) -> None:
        super().__init__(namespace, "jupyterhub")
        token = self.scope.password("jupyterhub-proxy-token")
        self.scope.secret("jupyterhub-proxy", {"token": token.result})
        self.scope.release(
            "jupyterhub", charts.JUPYTERHUB, hub_values(self.scope, args, token.result)
        )
        self.done()


def hub_values(
    scope: Scope, args: JupyterHubArgs, proxy_token: pulumi.Input[str]
) -> dict[str, object]:
    """The JupyterHub chart's values."""
    oauth, client_secret = args.oauth, args.client_secret
    hub, proxy, user = (
        scope.image(key) for key in ("jupyterhub_hub", "jupyterhub_proxy", "jupyterhub_singleuser")
    )
    site = scope.site
    # The policy's peers as the chart takes them.
    peers = [{"ipBlock": {"cidr": cidr}} for cidr in site.ingress_cidrs]
    return {
        "hub": {
            "image": hub.values("name"),
            "serviceAccount": {"create": True},
            "resources": SMALL_VALUES,
            "containerSecurityContext": RESTRICTED_CONTAINER_VALUES,
            "networkPolicy": {"enabled": True, "allowedIngressPorts": []},
            "config": {
                "JupyterHub": {"authenticator_class": "generic-oauth"},
                "Authenticator": {"allow_all": False, "admin_users": []},
                "GenericOAuthenticator": {
                    "client_id": oauth.client_id,
                    "client_secret": client_secret,
                    "oauth_callback_url": oauth.callback_url,
                    "authorize_url": oauth.authorize_url,
                    "token_url": oauth.token_url,
                    "userdata_url": oauth.userdata_url,
                    "scope": ["openid", "profile", "groups"],
                    "username_claim": oauth.username_claim,
                    "claim_groups_key": "groups",
                    "allowed_groups": list(oauth.allowed_groups),
                },
                # User servers meet the namespace's `restricted` Pod Security too.
                "KubeSpawner": {
                    "container_security_context": RESTRICTED_CONTAINER_VALUES,
                    "pod_security_context": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                },
            },
        },
        "proxy": {
            "secretToken": proxy_token,
            "service": {"type": site.jupyterhub_service_type},
            "chp": {
                "image": proxy.values("name"),
                "resources": SMALL_VALUES,
                "networkPolicy": {
                    "enabled": True,
                    "allowedIngressPorts": [],
                    "ingress": [{"from": peers, "ports": [{"port": "http"}]}] if peers else [],
                },
            },
        },
        "singleuser": {
            "image": user.values("name"),
            # The chart's privileged iptables init container would break `restricted`;
            # its network policy keeps user servers off the cloud metadata server.
            "cloudMetadata": {"blockWithIptables": False},
            "cpu": {"limit": 1, "guarantee": 0.1},
            "memory": {"limit": "1G", "guarantee": "256M"},
            "uid": 1000,
            "networkPolicy": {"enabled": True, "allowedIngressPorts": []},
        },
        "rbac": {"create": True},
        # No user scheduler or placeholders: they serve cluster autoscaling.
        "scheduling": {
            "userScheduler": {"enabled": False},
            "userPlaceholder": {"enabled": False},
        },
        "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
    }


def virtual_node_name(scope: Scope) -> str:
    return f"{scope.plan.instance}-slurm"


def virtual_kubelet_config(scope: Scope, interlink: InterLinkSite) -> str:
    """The virtual kubelet's InterLinkConfig.yaml; its capacity is the sum of the Slurm
    compute nodes' traits in the definition."""
    compute = [n for n in scope.plan.nodes if "slurm_compute" in n.roles]
    return yaml.safe_dump(
        {
            "InterlinkURL": interlink.url,
            "InterlinkPort": str(interlink.port),
            "VerboseLogging": False,
            "ErrorsOnlyLogging": False,
            "ServiceAccount": VIRTUAL_KUBELET,
            "Namespace": scope.plan.instance,
            "VKTokenFile": "/etc/interlink/token/token",
            "CPU": str(sum(n.traits.cpus for n in compute)),
            "Memory": f"{sum(n.traits.memory_mb for n in compute)}Mi",
            "Pods": "100",
            "GPU": str(sum(n.traits.gpus for n in compute)),
        },
        sort_keys=False,
    )


@dataclass(frozen=True)
class InterLinkArgs:
    site: InterLinkSite
    # The bearer token the kubelet presents (made by the interlink role on the login node).
    token: pulumi.Input[str]


class InterLink(Workload):
    """The virtual kubelet: its configuration, token, least-privilege RBAC and policy."""

    kind = "InterLink"

    def __init__(self, namespace: Namespace, args: InterLinkArgs) -> None:
        super().__init__(namespace, "interlink")
        scope, interlink = self.scope, args.site
        node = virtual_node_name(scope)
        scope.service_account(VIRTUAL_KUBELET, token=True)  # a kubelet talks to the API
        scope.config_map(
            f"{VIRTUAL_KUBELET}-config",
            {"InterLinkConfig.yaml": virtual_kubelet_config(scope, interlink)},
        )
        scope.secret(f"{VIRTUAL_KUBELET}-token", {"token": args.token})
        _kubelet_rbac(scope, node)
        labels = {"app.kubernetes.io/name": VIRTUAL_KUBELET}
        container = ContainerArgs(
            name="virtual-kubelet",
            image=scope.image("interlink_vk").ref,
            env=[
                env("NODENAME", node),
                env("KUBELET_PORT", str(KUBELET_PORT)),
                env("CONFIGPATH", "/etc/interlink/InterLinkConfig.yaml"),
                EnvVarArgs(
                    name="POD_IP",
                    value_from=EnvVarSourceArgs(
                        field_ref=ObjectFieldSelectorArgs(field_path="status.podIP")
                    ),
                ),
            ],
            ports=[ContainerPortArgs(container_port=KUBELET_PORT)],
            volume_mounts=[
                VolumeMountArgs(
                    name="config",
                    mount_path="/etc/interlink/InterLinkConfig.yaml",
                    sub_path="InterLinkConfig.yaml",
                ),
                VolumeMountArgs(name="token", mount_path="/etc/interlink/token", read_only=True),
            ],
        )
        volumes = [
            VolumeArgs(
                name="config",
                config_map=ConfigMapVolumeSourceArgs(name=f"{VIRTUAL_KUBELET}-config"),
            ),
            VolumeArgs(
                name="token", secret=SecretVolumeSourceArgs(secret_name=f"{VIRTUAL_KUBELET}-token")
            ),
        ]
        scope.deployment(
            VIRTUAL_KUBELET,
            labels,
            scope.pod_spec(VIRTUAL_KUBELET, [container], run_as=65532, token=True, volumes=volumes),
        )
        # The kubelet calls the API server and the login node; the API server calls it back
        # for logs (port 10250), from the addresses the site names, never from anywhere.
        scope.allow_egress(
            f"{VIRTUAL_KUBELET}-out",
            labels,
            sorted({443, 6443, interlink.port}),
            from_cidrs(["0.0.0.0/0"]),
        )
        if scope.site.api_server_cidrs:
            scope.allow_ingress(
                f"{VIRTUAL_KUBELET}-logs",
                labels,
                [KUBELET_PORT],
                from_cidrs(scope.site.api_server_cidrs),
            )
        self.done()


def _kubelet_rbac(scope: Scope, node: str) -> None:
    """What a virtual kubelet needs and no more. Cluster-wide: only its own Node and its
    lease (by name; `create` cannot be limited by name, so registering is the one unnamed
    verb). Pods, what they mount and events: a Role in the namespace that offloads, never
    across the cluster, and never a secret outside it."""
    cluster_rules = [
        PolicyRuleArgs(api_groups=[""], resources=["nodes"], verbs=["create"]),
        PolicyRuleArgs(
            api_groups=[""],
            resources=["nodes"],
            resource_names=[node],
            verbs=["get", "list", "watch", "update", "patch", "delete"],
        ),
        PolicyRuleArgs(
            api_groups=[""],
            resources=["nodes/status"],
            resource_names=[node],
            verbs=["update", "patch"],
        ),
        PolicyRuleArgs(api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["create"]),
        PolicyRuleArgs(
            api_groups=["coordination.k8s.io"],
            resources=["leases"],
            resource_names=[node],
            verbs=["get", "update", "patch"],
        ),
    ]
    namespace_rules = [
        PolicyRuleArgs(
            api_groups=[""], resources=["pods"], verbs=["get", "list", "watch", "delete"]
        ),
        PolicyRuleArgs(api_groups=[""], resources=["pods/status"], verbs=["update", "patch"]),
        PolicyRuleArgs(
            api_groups=[""],
            resources=["configmaps", "secrets", "services"],
            verbs=["get", "list", "watch"],
        ),
        PolicyRuleArgs(api_groups=[""], resources=["events"], verbs=["create", "patch"]),
    ]
    subjects = [SubjectArgs(kind="ServiceAccount", name=VIRTUAL_KUBELET, namespace=scope.ns)]
    name = f"{scope.plan.instance}-{VIRTUAL_KUBELET}"
    meta = ObjectMetaArgs(name=name, labels={PART_OF: scope.plan.instance})
    cluster_role = k8s.rbac.v1.ClusterRole(
        f"{scope.name}-{VIRTUAL_KUBELET}-role", metadata=meta, rules=cluster_rules, opts=scope.opts
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{scope.name}-{VIRTUAL_KUBELET}-binding",
        metadata=meta,
        role_ref=RoleRefArgs(
            api_group="rbac.authorization.k8s.io",
            kind="ClusterRole",
            name=cluster_role.metadata.name,
        ),
        subjects=subjects,
        opts=scope.opts,
    )
    local = scope.meta(VIRTUAL_KUBELET)
    role = k8s.rbac.v1.Role(
        f"{scope.name}-{VIRTUAL_KUBELET}-pods",
        metadata=local,
        rules=namespace_rules,
        opts=scope.opts,
    )
    k8s.rbac.v1.RoleBinding(
        f"{scope.name}-{VIRTUAL_KUBELET}-pods-binding",
        metadata=local,
        role_ref=RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
        ),
        subjects=subjects,
        opts=scope.opts,
    )
