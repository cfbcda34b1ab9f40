"""data-movement on Kubernetes: the Rucio server and daemons (upstream charts) with their
PostgreSQL and FTS3 with its MySQL for third-party copies, in a `grid` namespace of their
own (see GRID_POD_SECURITY), and one XRootD StatefulSet per endpoint node of the definition
in the testbed's restricted namespace."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    ConfigMapVolumeSourceArgs,
    ContainerArgs,
    ContainerPortArgs,
    KeyToPathArgs,
    SecretVolumeSourceArgs,
    SecurityContextArgs,
    VolumeArgs,
    VolumeMountArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs
from pulumi_kubernetes.networking.v1 import NetworkPolicyPeerArgs

from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program.scope import (
    NODE_GROUP,
    RUNTIME_DEFAULT,
    SMALL_VALUES,
    Namespace,
    Scope,
    Workload,
    env,
    env_from_secret,
    in_namespace_of,
    namespace_selector,
)
from testbeds.templating import render_role_template, role_default

FTS3_REST, FTS3_MONITORING = 8446, 8449
XROOTD_PORTS = {"root": 1094, "https": 8443}
XROOTD_STORAGE_DIR, XROOTD_CONFIG_DIR = "/srv/xrootd", "/etc/xrootd/wp5"
XROOTD_TLS_DIR = "/etc/grid-security/xrd"
# Marks the storage endpoints' pods, which the grid services reach.
ENDPOINT = "testbeds.wp5/storage-endpoint"
GRID_POD_SECURITY = (
    "FTS3's upstream image starts httpd and the fts_server daemons as root (they switch to "
    "the fts3 user themselves), and the Rucio charts set no security context (the server "
    "image starts httpd as root); FTS3 still drops all capabilities but the few that "
    "switching users needs, no pod is privileged or mounts a host path, and the program's "
    "own databases here meet restricted"
)
# Capabilities Apache and the FTS daemons need to bind and change to their own user.
FTS3_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "NET_BIND_SERVICE"]
DAEMONS = (
    "judgeEvaluator",
    "judgeRepairer",
    "judgeCleaner",
    "conveyorTransferSubmitter",
    "conveyorPoller",
    "conveyorFinisher",
    "reaper",
)


def fts3_url(fts: Scope) -> pulumi.Output[str]:
    return pulumi.Output.concat("https://fts3.", fts.ns, ".svc:", str(FTS3_REST))


class Rucio(Workload):
    """Rucio with a PostgreSQL of its own; its conveyor hands transfers to FTS3."""

    kind = "Rucio"

    def __init__(self, grid: Namespace) -> None:
        super().__init__(grid, "rucio")
        scope = self.scope
        db_password = scope.password("rucio-db")
        root_password = scope.password("rucio-root")
        db_url = pulumi.Output.concat(
            "postgresql+psycopg://rucio:", db_password.result, "@rucio-db/rucio"
        )
        scope.secret("rucio-db", {"POSTGRES_PASSWORD": db_password.result, "url": db_url})
        scope.secret("rucio-root", {"password": root_password.result})
        scope.postgres("rucio-db", "rucio")
        scope.service_account("rucio")
        config = {
            "database": {"default": db_url},
            "conveyor": {
                "scheme": "https,davs,root",
                "transfertool": "fts3",
                "ftshosts": fts3_url(scope),
            },
        }
        server = scope.image("rucio_server")
        scope.release(
            "rucio-server",
            charts.RUCIO_SERVER,
            {
                "serviceAccountName": "rucio",
                "config": config,
                "image": server.values(),
                "replicaCount": 1,
                "serverResources": SMALL_VALUES,
                # The log sidecar is an unpinned busybox; the logs are the pod's anyway.
                "exposeErrorLogs": False,
            },
        )
        daemons = scope.image("rucio_daemons")
        scope.release(
            "rucio-daemons",
            charts.RUCIO_DAEMONS,
            {
                "serviceAccountName": "rucio",
                "config": config,
                "image": daemons.values(),
                **{f"{daemon}Count": 1 for daemon in DAEMONS},
            },
        )
        self.done()


class FTS3(Workload):
    """FTS3 and its MySQL; only the grid namespace reaches its REST port."""

    kind = "FTS3"

    def __init__(self, grid: Namespace) -> None:
        super().__init__(grid, "fts3")
        fts = self.scope
        db_password = fts.password("fts3-db")
        fts.secret(
            "fts3-db",
            {"MYSQL_PASSWORD": db_password.result, "MYSQL_ROOT_PASSWORD": db_password.result},
        )
        db_labels = {"app.kubernetes.io/name": "fts3-db"}
        fts.service_account("fts3-db")
        fts.service("fts3-db", db_labels, {"mysql": 3306})
        fts.stateful_set(
            "fts3-db",
            db_labels,
            ContainerArgs(
                name="mysql",
                image=fts.image("mysql").ref,
                env=[
                    env("MYSQL_DATABASE", "fts3"),
                    env("MYSQL_USER", "fts3"),
                    *(
                        env_from_secret(key, "fts3-db", key)
                        for key in ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD")
                    ),
                ],
                ports=[ContainerPortArgs(container_port=3306)],
                volume_mounts=[VolumeMountArgs(name="data", mount_path="/var/lib/mysql")],
            ),
            run_as=999,
            size="5Gi",
        )
        labels = {"app.kubernetes.io/name": "fts3"}
        fts.service_account("fts3")
        fts.service("fts3", labels, {"rest": FTS3_REST, "monitoring": FTS3_MONITORING})
        container = ContainerArgs(
            name="fts3",
            image=fts.image("fts3").ref,
            env=[
                env("DATABASE_TYPE", "mysql"),
                env("DATABASE_HOST", "fts3-db"),
                env("DATABASE_USER", "fts3"),
                env_from_secret("DATABASE_PASSWORD", "fts3-db", "MYSQL_PASSWORD"),
            ],
            ports=[
                ContainerPortArgs(container_port=FTS3_REST),
                ContainerPortArgs(container_port=FTS3_MONITORING),
            ],
            security_context=SecurityContextArgs(
                allow_privilege_escalation=False,
                capabilities=CapabilitiesArgs(drop=["ALL"], add=FTS3_CAPABILITIES),
                seccomp_profile=RUNTIME_DEFAULT,
            ),
        )
        fts.deployment("fts3", labels, fts.pod_spec("fts3", [container], run_as=None))
        self.done()


def connect(grid: Namespace, main: Namespace) -> None:
    """FTS3 copies and Rucio's reaper deletes on the endpoints: the grid namespace may
    open their ports, and the endpoints admit it; nothing else crosses."""
    ports = list(XROOTD_PORTS.values())
    endpoints = LabelSelectorArgs(match_labels={ENDPOINT: "xrootd"})
    grid.scope.allow_egress(
        "grid-to-endpoints",
        {},
        ports,
        [
            NetworkPolicyPeerArgs(
                namespace_selector=namespace_selector(main.scope), pod_selector=endpoints
            )
        ],
    )
    main.scope.allow_ingress(
        "endpoints-from-grid", {ENDPOINT: "xrootd"}, ports, [in_namespace_of(grid.scope)]
    )


@dataclass(frozen=True)
class XRootDArgs:
    node: str
    group: str
    # The issuer whose storage tokens the endpoint accepts.
    issuer: str


class XRootD(Workload):
    """An XRootD endpoint configured as the local `xrootd` role configures one, from the
    role's own templates: every request over davs:// or root:// (ztn, over TLS) needs a
    storage token the site's issuer signed for this endpoint's audience, with scopes for the
    path; no token, nothing granted. Its TLS certificate is the namespace authority's."""

    kind = "XRootD"

    def __init__(self, namespace: Namespace, args: XRootDArgs) -> None:
        super().__init__(namespace, args.node)
        scope, node, issuer = self.scope, args.node, args.issuer
        scope.service_account(node)
        labels = {"app.kubernetes.io/name": node, NODE_GROUP: args.group, ENDPOINT: "xrootd"}
        scope.service(node, labels, XROOTD_PORTS)
        tls_secret = scope.tls_secret(node)
        config = f"{node}-xrootd"
        scope.config_map(
            config,
            pulumi.Output.from_input(scope.ns).apply(lambda ns: xrootd_config(node, ns, issuer)),
        )
        tls_files = {"tls.crt": "hostcert.pem", "tls.key": "hostkey.pem", "ca.crt": "ca.pem"}
        container = ContainerArgs(
            name="xrootd",
            image=scope.image("xrootd").ref,
            command=["xrootd", "-c", f"{XROOTD_CONFIG_DIR}/xrootd.cfg", "-n", "wp5"],
            ports=[ContainerPortArgs(container_port=p, name=n) for n, p in XROOTD_PORTS.items()],
            volume_mounts=[
                VolumeMountArgs(name="data", mount_path=XROOTD_STORAGE_DIR),
                VolumeMountArgs(name="config", mount_path=XROOTD_CONFIG_DIR, read_only=True),
                VolumeMountArgs(name="tls", mount_path=XROOTD_TLS_DIR, read_only=True),
            ],
        )
        volumes = [
            VolumeArgs(name="config", config_map=ConfigMapVolumeSourceArgs(name=config)),
            VolumeArgs(
                name="tls",
                secret=SecretVolumeSourceArgs(
                    secret_name=tls_secret,
                    # Readable by the pod's group (fsGroup), which XRootD runs as.
                    default_mode=0o440,
                    items=[KeyToPathArgs(key=k, path=v) for k, v in tls_files.items()],
                ),
            ),
        ]
        scope.stateful_set(node, labels, container, run_as=10940, size="10Gi", volumes=volumes)
        self.done()


def xrootd_config(node: str, namespace: str, issuer: str) -> dict[str, pulumi.Input[str]]:
    """The endpoint's configuration files, from the `xrootd` role's templates."""
    values: dict[str, object] = {
        "xrootd_site_name": node,
        "xrootd_export_path": "/data",
        "xrootd_storage_dir": XROOTD_STORAGE_DIR,
        "xrootd_root_port": XROOTD_PORTS["root"],
        "xrootd_https_port": XROOTD_PORTS["https"],
        "xrootd_directory_mode": "",
        "xrootd_checksum": role_default("xrootd", "xrootd_checksum"),
        "xrootd_checksum_max": role_default("xrootd", "xrootd_checksum_max"),
        "xrootd_token_issuer": issuer,
        "xrootd_token_issuer_url": issuer,
        "xrootd_token_audience": f"https://{node}.{namespace}.svc:{XROOTD_PORTS['https']}",
        "xrootd_ca_file": f"{XROOTD_TLS_DIR}/ca.pem",
        "xrootd_tpc_streams": 10,
        "__xrootd_scitokens_cfg": f"{XROOTD_CONFIG_DIR}/scitokens.cfg",
        "__xrootd_authdb": f"{XROOTD_CONFIG_DIR}/authdb",
        "__xrootd_tls_dir": XROOTD_TLS_DIR,
        "__xrootd_tpc_pgm": "",
        "__xrootd_share_dirs": "",
    }
    return {
        name: render_role_template("xrootd", f"{template}.j2", **values)
        for name, template in (
            ("xrootd.cfg", "xrootd.cfg"),
            ("scitokens.cfg", "scitokens.cfg"),
            ("authdb", "authdb"),
        )
    }
