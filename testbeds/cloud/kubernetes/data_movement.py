"""data-movement on Kubernetes: the Rucio server and daemons (upstream charts) with their
PostgreSQL, FTS3 with its MySQL for third-party copies, and one XRootD StatefulSet per
endpoint node of the definition."""

from __future__ import annotations

import pulumi

from testbeds.cloud import charts
from testbeds.cloud.kubernetes.scope import NODE_GROUP, SMALL, Scope

FTS3_REST, FTS3_MONITORING = 8446, 8449
XROOTD_PORTS = {"root": 1094, "https": 8443}
# FTS3's server image starts Apache and the FTS daemons as root and drops to the fts3 user
# itself; upstream publishes no image that starts unprivileged.
FTS3_POD_SECURITY = (
    "FTS3's upstream image starts httpd and the fts_server daemons as root (they switch to "
    "the fts3 user themselves); the pods still drop all capabilities but the few that "
    "switching users needs, and run no privileged container or host path"
)
# Capabilities Apache and the FTS daemons need to bind and change to their own user.
FTS3_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "NET_BIND_SERVICE"]


def fts3_url(fts: Scope) -> pulumi.Output[str]:
    return pulumi.Output.concat("https://fts3.", fts.ns, ".svc:", str(FTS3_REST))


def rucio(scope: Scope, fts: Scope | None) -> None:
    """Rucio with a PostgreSQL of its own; transfers go to FTS3 when the program runs it."""
    db_password = scope.password("rucio-db")
    root_password = scope.password("rucio-root")
    db_url = pulumi.Output.concat(
        "postgresql+psycopg://rucio:", db_password.result, "@rucio-db/rucio"
    )
    scope.secret("rucio-db", {"POSTGRES_PASSWORD": db_password.result, "url": db_url})
    scope.secret("rucio-root", {"password": root_password.result})
    scope.postgres("rucio-db", "rucio")
    scope.service_account("rucio")
    config: dict[str, object] = {"database": {"default": db_url}}
    if fts is not None:
        config["conveyor"] = {
            "scheme": "https,davs,root",
            "transfertool": "fts3",
            "ftshosts": fts3_url(fts),
        }
    common = {"serviceAccountName": "rucio", "resources": SMALL, "config": config}
    scope.release("rucio-server", charts.RUCIO_SERVER, {**common, "replicaCount": 1})
    daemons = {
        "judgeEvaluatorCount": 1,
        "judgeRepairerCount": 1,
        "judgeCleanerCount": 1,
        "conveyorSubmitterCount": 1,
        "conveyorPollerCount": 1,
        "conveyorFinisherCount": 1,
        "reaperCount": 1,
    }
    scope.release("rucio-daemons", charts.RUCIO_DAEMONS, {**common, **daemons})


def fts3(fts: Scope, main: Scope) -> None:
    """FTS3 and its MySQL in their own namespace (see FTS3_POD_SECURITY); only the main
    namespace reaches its REST port, and it reaches only the XRootD endpoints there."""
    db_password = fts.password("fts3-db")
    fts.secret(
        "fts3-db", {"MYSQL_PASSWORD": db_password.result, "MYSQL_ROOT_PASSWORD": db_password.result}
    )
    db_labels = {"app.kubernetes.io/name": "fts3-db"}
    fts.service_account("fts3-db")
    fts.service("fts3-db", db_labels, {"mysql": 3306})
    fts.stateful_set(
        "fts3-db",
        db_labels,
        {
            "name": "mysql",
            "image": fts.site.image("mysql"),
            "env": [
                {"name": "MYSQL_DATABASE", "value": "fts3"},
                {"name": "MYSQL_USER", "value": "fts3"},
                *(
                    {"name": key, "valueFrom": {"secretKeyRef": {"name": "fts3-db", "key": key}}}
                    for key in ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD")
                ),
            ],
            "ports": [{"containerPort": 3306}],
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
        },
        run_as=999,
        size="5Gi",
    )
    labels = {"app.kubernetes.io/name": "fts3"}
    fts.service_account("fts3")
    fts.service("fts3", labels, {"rest": FTS3_REST, "monitoring": FTS3_MONITORING})
    container = {
        "name": "fts3",
        "image": fts.site.image("fts3"),
        "env": [
            {"name": "DATABASE_TYPE", "value": "mysql"},
            {"name": "DATABASE_HOST", "value": "fts3-db"},
            {"name": "DATABASE_USER", "value": "fts3"},
            {
                "name": "DATABASE_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "fts3-db", "key": "MYSQL_PASSWORD"}},
            },
        ],
        "ports": [{"containerPort": FTS3_REST}, {"containerPort": FTS3_MONITORING}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": FTS3_CAPABILITIES},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    fts.deployment("fts3", labels, fts.pod_spec("fts3", [container], run_as=None))
    main_namespace = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": main.ns}}
    }
    fts.allow_ingress("fts3-from-testbed", labels, [FTS3_REST, FTS3_MONITORING], [main_namespace])
    fts.allow_egress(
        "fts3-to-endpoints",
        labels,
        list(XROOTD_PORTS.values()),
        [
            {
                **main_namespace,
                "podSelector": {"matchExpressions": [{"key": NODE_GROUP, "operator": "Exists"}]},
            }
        ],
    )
    fts_namespace = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": fts.ns}}}
    main.allow_egress("testbed-to-fts3", {}, [FTS3_REST, FTS3_MONITORING], [fts_namespace])


def xrootd(scope: Scope, node: str, group: str) -> None:
    scope.service_account(node)
    labels = {"app.kubernetes.io/name": node, NODE_GROUP: group}
    scope.service(node, labels, XROOTD_PORTS)
    scope.stateful_set(
        node,
        labels,
        {
            "name": "xrootd",
            "image": scope.site.image("xrootd"),
            "ports": [{"containerPort": p} for p in XROOTD_PORTS.values()],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        },
        run_as=10940,
        size="10Gi",
    )
