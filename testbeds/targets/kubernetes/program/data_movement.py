"""data-movement on Kubernetes: the Rucio server and daemons (upstream charts) with their
PostgreSQL and FTS3 with its MySQL for third-party copies, in a `grid` namespace of their
own (see GRID_POD_SECURITY), and one XRootD StatefulSet per endpoint node of the definition
in the testbed's restricted namespace."""

from __future__ import annotations

import pulumi

from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program.scope import NODE_GROUP, SMALL, Scope
from testbeds.templating import render_role_template

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


def rucio(grid: Scope) -> None:
    """Rucio with a PostgreSQL of its own; its conveyor hands transfers to FTS3."""
    db_password = grid.password("rucio-db")
    root_password = grid.password("rucio-root")
    db_url = pulumi.Output.concat(
        "postgresql+psycopg://rucio:", db_password.result, "@rucio-db/rucio"
    )
    grid.secret("rucio-db", {"POSTGRES_PASSWORD": db_password.result, "url": db_url})
    grid.secret("rucio-root", {"password": root_password.result})
    grid.postgres("rucio-db", "rucio")
    grid.service_account("rucio")
    config = {
        "database": {"default": db_url},
        "conveyor": {
            "scheme": "https,davs,root",
            "transfertool": "fts3",
            "ftshosts": fts3_url(grid),
        },
    }
    server = grid.image("rucio_server")
    grid.release(
        "rucio-server",
        charts.RUCIO_SERVER,
        {
            "serviceAccountName": "rucio",
            "config": config,
            "image": server.values(),
            "replicaCount": 1,
            "serverResources": SMALL,
            # The log sidecar is an unpinned busybox; the logs are the pod's anyway.
            "exposeErrorLogs": False,
        },
    )
    daemons = grid.image("rucio_daemons")
    grid.release(
        "rucio-daemons",
        charts.RUCIO_DAEMONS,
        {
            "serviceAccountName": "rucio",
            "config": config,
            "image": daemons.values(),
            **{f"{daemon}Count": 1 for daemon in DAEMONS},
        },
    )


def fts3(fts: Scope) -> None:
    """FTS3 and its MySQL; only the grid namespace reaches its REST port."""
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
            "image": fts.image("mysql").ref,
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
        "image": fts.image("fts3").ref,
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


def connect(grid: Scope, main: Scope) -> None:
    """FTS3 copies and Rucio's reaper deletes on the endpoints: the grid namespace may
    open their ports, and the endpoints admit it; nothing else crosses."""
    ports = list(XROOTD_PORTS.values())
    grid.allow_egress(
        "grid-to-endpoints",
        {},
        ports,
        [{**namespace(main), "podSelector": {"matchLabels": {ENDPOINT: "xrootd"}}}],
    )
    main.allow_ingress("endpoints-from-grid", {ENDPOINT: "xrootd"}, ports, [namespace(grid)])


def namespace(scope: Scope) -> dict[str, object]:
    """A peer selecting every pod of the scope's namespace."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": scope.ns}}}


def xrootd(scope: Scope, node: str, group: str, issuer: str) -> None:
    """An XRootD endpoint configured as the local `xrootd` role configures one, from the
    role's own templates: every request over davs:// or root:// (ztn, over TLS) needs a
    storage token the site's issuer signed for this endpoint's audience, with scopes for the
    path; no token, nothing granted. Its TLS certificate is the namespace authority's."""
    scope.service_account(node)
    labels = {"app.kubernetes.io/name": node, NODE_GROUP: group, ENDPOINT: "xrootd"}
    scope.service(node, labels, XROOTD_PORTS)
    tls_secret = scope.tls_secret(node)
    config = f"{node}-xrootd"
    scope.config_map(
        config,
        pulumi.Output.from_input(scope.ns).apply(lambda ns: xrootd_config(node, ns, issuer)),
    )
    tls_files = {"tls.crt": "hostcert.pem", "tls.key": "hostkey.pem", "ca.crt": "ca.pem"}
    container = {
        "name": "xrootd",
        "image": scope.image("xrootd").ref,
        "command": ["xrootd", "-c", f"{XROOTD_CONFIG_DIR}/xrootd.cfg", "-n", "wp5"],
        "ports": [{"containerPort": p, "name": n} for n, p in XROOTD_PORTS.items()],
        "volumeMounts": [
            {"name": "data", "mountPath": XROOTD_STORAGE_DIR},
            {"name": "config", "mountPath": XROOTD_CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": XROOTD_TLS_DIR, "readOnly": True},
        ],
    }
    volumes = [
        {"name": "config", "configMap": {"name": config}},
        {
            "name": "tls",
            "secret": {
                "secretName": tls_secret,
                # Readable by the pod's group (fsGroup), which XRootD runs as.
                "defaultMode": 0o440,
                "items": [{"key": k, "path": v} for k, v in tls_files.items()],
            },
        },
    ]
    scope.stateful_set(node, labels, container, run_as=10940, size="10Gi", volumes=volumes)


def xrootd_config(node: str, namespace: str, issuer: str) -> dict[str, pulumi.Input[str]]:
    """The endpoint's configuration files, from the `xrootd` role's templates."""
    values: dict[str, object] = {
        "xrootd_site_name": node,
        "xrootd_export_path": "/data",
        "xrootd_storage_dir": XROOTD_STORAGE_DIR,
        "xrootd_root_port": XROOTD_PORTS["root"],
        "xrootd_https_port": XROOTD_PORTS["https"],
        "xrootd_directory_mode": "",
        "xrootd_checksum": "adler32",
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
