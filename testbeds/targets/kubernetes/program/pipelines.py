"""pipelines on Kubernetes: Argo Workflows runs the pipeline, MinIO holds workflow and
MLflow artifacts, MLflow tracks experiments in a PostgreSQL of its own, and an OCI
registry (the distribution chart) receives the images jobs build.

Argo Workflows rather than Tekton: a pipeline here is a short DAG of containers over one
git checkout, which is exactly a Workflow; Argo needs one controller and passes files
between steps through the artifact store the testbed has anyway, while Tekton would add
its pipelines, triggers and dashboard projects for the same DAG.

The sample WorkflowTemplate (workflow.py) is generated from the sample repository's
`.wp5-pipeline.yml`, the file Buildbot reads on the local target, so both run the same jobs
in the same order."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_kubernetes.core.v1 import (
    ContainerArgs,
    ContainerPortArgs,
    HTTPGetActionArgs,
    ProbeArgs,
    SecretVolumeSourceArgs,
    VolumeArgs,
    VolumeMountArgs,
)

from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program import workflow
from testbeds.targets.kubernetes.program.pipeline_services import (
    MINIO_PORT,
    MLFLOW_JOB_SECRET,
    MLFLOW_JOB_USER,
    MLFLOW_PORT,
    REGISTRY_SECRET,
    RUN_AS,
    WORKFLOW_ACCOUNT,
)
from testbeds.targets.kubernetes.program.scope import (
    RESTRICTED_CONTAINER_VALUES,
    SMALL_VALUES,
    Namespace,
    Scope,
    Workload,
    env,
    env_from_secret,
)

RUN_AS_CI = {
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
MLFLOW_AUTH_DIR, MLFLOW_AUTH_FILE, MLFLOW_TLS_DIR = (
    "/etc/mlflow/auth",
    "basic_auth.ini",
    "/etc/mlflow/tls",
)
# Run before the server: creates the tables of MLflow's basic-auth app and the jobs'
# account, or sets its password to the generated one (the admin comes from the ini file).
MLFLOW_ACCOUNTS = """\
import os
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

store = SqlAlchemyStore()
store.init_db(read_auth_config().database_uri)
name, password = os.environ["MLFLOW_JOB_USER"], os.environ["MLFLOW_JOB_PASSWORD"]
if store.has_user(name):
    store.update_user(name, password=password)
else:
    store.create_user(name, password)
"""


def pipelines(namespace: Namespace) -> None:
    """Each service a workload component of its own, in the testbed's namespace."""
    MinIO(namespace)
    ArgoWorkflows(namespace)
    MLflow(namespace)
    Registry(namespace)
    workflow.SampleWorkflow(namespace)


class MinIO(Workload):
    """Workflow and MLflow artifacts; the root credentials generated into a Secret."""

    kind = "MinIO"

    def __init__(self, namespace: Namespace) -> None:
        super().__init__(namespace, "minio")
        scope = self.scope
        minio_user, minio_password = scope.password("minio-user"), scope.password("minio-root")
        scope.secret(
            "minio-root",
            {
                "rootUser": pulumi.Output.concat("wp5-", minio_user.result),
                "rootPassword": minio_password.result,
            },
        )
        minio, client = scope.image("minio"), scope.image("minio_client")
        scope.release(
            "minio",
            charts.MINIO,
            {
                "image": minio.values(),
                "mcImage": client.values(),
                "fullnameOverride": "minio",
                # The chart's default adds a `console` user with a published password.
                "users": [],
                "mode": "standalone",
                "replicas": 1,
                "existingSecret": "minio-root",
                "buckets": [
                    {"name": "mlflow", "policy": "none"},
                    {"name": "argo-artifacts", "policy": "none"},
                ],
                "persistence": _persistence(scope, "20Gi"),
                "resources": SMALL_VALUES,
                "securityContext": {
                    "enabled": True,
                    "runAsUser": RUN_AS,
                    "runAsGroup": RUN_AS,
                    "fsGroup": RUN_AS,
                },
                "containerSecurityContext": RESTRICTED_CONTAINER_VALUES,
                # The job that creates the buckets.
                "postJob": {"securityContext": {"enabled": True, **RUN_AS_CI}},
                "makeBucketJob": {
                    "securityContext": {"enabled": True},
                    "containerSecurityContext": RESTRICTED_CONTAINER_VALUES,
                    "resources": SMALL_VALUES,
                },
            },
        )
        self.done()


class Registry(Workload):
    """The distribution registry with one bcrypt htpasswd account for the jobs."""

    kind = "Registry"

    def __init__(self, namespace: Namespace) -> None:
        super().__init__(namespace, "registry")
        scope = self.scope
        registry_user = "ci"
        registry_password = scope.password("registry")
        registry = scope.image("registry")
        scope.secret(
            REGISTRY_SECRET, {"username": registry_user, "password": registry_password.result}
        )
        scope.release(
            "registry",
            charts.REGISTRY,
            {
                "fullnameOverride": "registry",
                # bcrypt, as the distribution registry's htpasswd auth requires
                "secrets": {
                    "htpasswd": pulumi.Output.concat(
                        registry_user, ":", registry_password.bcrypt_hash
                    )
                },
                "image": registry.values(),
                "persistence": {"enabled": True, **_persistence(scope, "20Gi")},
                "resources": SMALL_VALUES,
                "securityContext": {"enabled": True, **RUN_AS_CI},
                "containerSecurityContext": {"enabled": True, **RESTRICTED_CONTAINER_VALUES},
            },
        )
        self.done()


def _persistence(scope: Scope, size: str) -> dict[str, Any]:
    volume: dict[str, Any] = {"size": size}
    if scope.site.storage_class:
        volume["storageClass"] = scope.site.storage_class
    return volume


class ArgoWorkflows(Workload):
    """The controller watches this namespace only (namespaced Roles, no ClusterRole for
    workflows); workflows run as WORKFLOW_ACCOUNT, which may only report task results."""

    kind = "ArgoWorkflows"

    def __init__(self, namespace: Namespace) -> None:
        super().__init__(namespace, "argo-workflows")
        scope = self.scope
        controller, executor, server = (
            scope.image(key) for key in ("argo_controller", "argo_executor", "argo_server")
        )
        scope.release(
            "argo-workflows",
            charts.ARGO_WORKFLOWS,
            {
                "singleNamespace": True,
                # No cluster-wide roles: not the aggregated view/edit/admin ones, nor those
                # for ClusterWorkflowTemplates, which a testbed does not use.
                "createAggregateRoles": False,
                "controller": {
                    "image": controller.parts(),
                    "clusterWorkflowTemplates": {"enabled": False},
                    "workflowNamespaces": [scope.ns],
                    "resources": SMALL_VALUES,
                    "securityContext": RESTRICTED_CONTAINER_VALUES,
                },
                "executor": {
                    "image": executor.parts(),
                    "resources": SMALL_VALUES,
                    "securityContext": RESTRICTED_CONTAINER_VALUES,
                },
                "server": {
                    "image": server.parts(),
                    "clusterWorkflowTemplates": {"enabled": False},
                    "enabled": True,
                    "authModes": ["client"],
                    "resources": SMALL_VALUES,
                    "securityContext": RESTRICTED_CONTAINER_VALUES,
                },
                "workflow": {
                    "serviceAccount": {"create": True, "name": WORKFLOW_ACCOUNT},
                    "rbac": {"create": True},
                },
                "useStaticCredentials": True,
                "artifactRepository": {
                    "archiveLogs": True,
                    "s3": {
                        "bucket": "argo-artifacts",
                        "endpoint": f"minio:{MINIO_PORT}",
                        "insecure": True,
                        "accessKeySecret": {"name": "minio-root", "key": "rootUser"},
                        "secretKeySecret": {"name": "minio-root", "key": "rootPassword"},
                    },
                },
            },
        )
        self.done()


class MLflow(Workload):
    """MLflow serves the artifact store itself (--serve-artifacts): jobs need only the
    tracking URL and their account, never the MinIO credentials. It speaks only HTTPS (a
    certificate of the namespace's authority) and lets in only accounts of its basic-auth
    app: an administrator the program generates and the pipeline jobs' account, which owns
    the experiments it creates (others get no permission by default)."""

    kind = "MLflow"

    def __init__(self, namespace: Namespace) -> None:
        super().__init__(namespace, "mlflow")
        scope = self.scope
        db_password = scope.password("mlflow-db")
        db_url = pulumi.Output.concat(
            "postgresql://mlflow:", db_password.result, "@mlflow-db/mlflow"
        )
        scope.secret("mlflow-db", {"POSTGRES_PASSWORD": db_password.result, "url": db_url})
        scope.postgres("mlflow-db", "mlflow")
        admin, jobs, session = (
            scope.password(name) for name in ("mlflow-admin", "mlflow-ci", "mlflow-session")
        )
        scope.secret(
            "mlflow-auth",
            {
                MLFLOW_AUTH_FILE: pulumi.Output.concat(
                    "[mlflow]\n",
                    "default_permission = NO_PERMISSIONS\n",
                    "database_uri = ", db_url, "\n",
                    "admin_username = admin\n",
                    "admin_password = ", admin.result, "\n",
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                ),
                "session-key": session.result,
            },
        )  # fmt: skip
        scope.secret(MLFLOW_JOB_SECRET, {"username": MLFLOW_JOB_USER, "password": jobs.result})
        tls_secret = scope.tls_secret("mlflow")
        labels = {"app.kubernetes.io/name": "mlflow"}
        scope.service_account("mlflow")
        scope.service("mlflow", labels, {"https": MLFLOW_PORT})
        auth_env = env("MLFLOW_AUTH_CONFIG_PATH", f"{MLFLOW_AUTH_DIR}/{MLFLOW_AUTH_FILE}")
        auth_mount = VolumeMountArgs(name="auth", mount_path=MLFLOW_AUTH_DIR, read_only=True)
        tls_mount = VolumeMountArgs(name="tls", mount_path=MLFLOW_TLS_DIR, read_only=True)
        accounts = ContainerArgs(
            name="accounts",
            image=scope.image("mlflow").ref,
            command=["python", "-c", MLFLOW_ACCOUNTS],
            env=[
                auth_env,
                env("MLFLOW_JOB_USER", MLFLOW_JOB_USER),
                env_from_secret("MLFLOW_JOB_PASSWORD", MLFLOW_JOB_SECRET, "password"),
            ],
            volume_mounts=[auth_mount],
        )
        # Secrets reach the server as environment and files, never as arguments: MLflow
        # reads its store URI from MLFLOW_BACKEND_STORE_URI itself.
        server = ContainerArgs(
            name="mlflow",
            image=scope.image("mlflow").ref,
            command=["mlflow", "server"],
            args=[
                "--app-name=basic-auth",
                "--host=0.0.0.0",
                f"--port={MLFLOW_PORT}",
                "--artifacts-destination=s3://mlflow",
                "--serve-artifacts",
                f"--allowed-hosts=mlflow,mlflow:{MLFLOW_PORT},localhost,localhost:{MLFLOW_PORT}",
            ],
            env=[
                auth_env,
                env(
                    "MLFLOW_UVICORN_OPTS",
                    f"--ssl-keyfile={MLFLOW_TLS_DIR}/tls.key "
                    f"--ssl-certfile={MLFLOW_TLS_DIR}/tls.crt",
                ),
                env("MLFLOW_S3_ENDPOINT_URL", f"http://minio:{MINIO_PORT}"),
                env_from_secret("MLFLOW_BACKEND_STORE_URI", "mlflow-db", "url"),
                env_from_secret("MLFLOW_FLASK_SERVER_SECRET_KEY", "mlflow-auth", "session-key"),
                env_from_secret("AWS_ACCESS_KEY_ID", "minio-root", "rootUser"),
                env_from_secret("AWS_SECRET_ACCESS_KEY", "minio-root", "rootPassword"),
            ],
            ports=[ContainerPortArgs(container_port=MLFLOW_PORT)],
            volume_mounts=[auth_mount, tls_mount],
            readiness_probe=ProbeArgs(
                http_get=HTTPGetActionArgs(path="/health", port=MLFLOW_PORT, scheme="HTTPS")
            ),
        )
        volumes = [
            VolumeArgs(
                name="auth",
                secret=SecretVolumeSourceArgs(secret_name="mlflow-auth", default_mode=0o400),
            ),
            VolumeArgs(
                name="tls",
                secret=SecretVolumeSourceArgs(secret_name=tls_secret, default_mode=0o400),
            ),
        ]
        spec = scope.pod_spec(
            "mlflow", [server], run_as=RUN_AS, volumes=volumes, init_containers=[accounts]
        )
        scope.deployment("mlflow", labels, spec)
        self.done()
