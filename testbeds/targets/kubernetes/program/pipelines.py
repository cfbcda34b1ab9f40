"""pipelines on Kubernetes: Argo Workflows runs the pipeline, MinIO holds workflow and
MLflow artifacts, MLflow tracks experiments in a PostgreSQL of its own, and an OCI
registry (the distribution chart) receives the images jobs build.

Argo Workflows rather than Tekton: a pipeline here is a short DAG of containers over one
git checkout, which is exactly a Workflow; Argo needs one controller and passes files
between steps through the artifact store the testbed has anyway, while Tekton would add
its pipelines, triggers and dashboard projects for the same DAG.

The sample WorkflowTemplate is generated from the sample repository's `.wp5-pipeline.yml`,
the file Buildbot reads on the local target, so both run the same jobs in the same order;
jobs tagged `gpu` ask for an `nvidia.com/gpu`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from testbeds import paths
from testbeds import pipeline_file as pipeline_file_schema
from testbeds.targets.kubernetes import charts
from testbeds.targets.kubernetes.program import certificates
from testbeds.targets.kubernetes.program.scope import RESTRICTED_CONTAINER, SMALL, Scope

SAMPLE = paths.PACKAGE_DIR / "samples" / "research-pipeline"
WORKFLOW_ACCOUNT = "wp5-pipeline"
MLFLOW_PORT, MINIO_PORT, REGISTRY_PORT = 5000, 9000, 5000
RUN_AS = 1000
RUN_AS_CI = {
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Job containers get crane (an unprivileged OCI image tool) on PATH: buildah, which the
# local workers use, needs user namespaces that restricted Pod Security does not allow.
TOOLS = "/opt/wp5-tools"
MLFLOW_AUTH_DIR, MLFLOW_AUTH_FILE, MLFLOW_TLS_DIR = (
    "/etc/mlflow/auth",
    "basic_auth.ini",
    "/etc/mlflow/tls",
)
# The account pipeline jobs log runs as; it owns the experiments it creates.
MLFLOW_JOB_USER = "ci"
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
# Where job containers find the namespace's CA certificate.
CA_DIR = "/etc/testbed-ca"


def toolchain() -> list[str]:
    """The packages the local CI workers pin, so jobs see the same versions here."""
    defaults = paths.roles_dir() / "buildbot_worker" / "defaults" / "main.yml"
    return list(yaml.safe_load(defaults.read_text())["buildbot_worker_python_packages"])


def pipelines(scope: Scope) -> None:
    """Each service a workload component of its own, in the testbed's namespace."""
    _minio(scope.workload("MinIO", "minio"))
    _argo(scope.workload("ArgoWorkflows", "argo-workflows"))
    _mlflow(scope.workload("MLflow", "mlflow"))
    _registry(scope.workload("Registry", "registry"))
    _sample_workflow(scope.workload("Workflow", "research-pipeline"))


def _minio(scope: Scope) -> None:
    """Workflow and MLflow artifacts; the root credentials generated into a Secret."""
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
            "resources": SMALL,
            "securityContext": {
                "enabled": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
            },
            "containerSecurityContext": RESTRICTED_CONTAINER,
            # The job that creates the buckets.
            "postJob": {"securityContext": {"enabled": True, **RUN_AS_CI}},
            "makeBucketJob": {
                "securityContext": {"enabled": True},
                "containerSecurityContext": RESTRICTED_CONTAINER,
                "resources": SMALL,
            },
        },
    )


def _registry(scope: Scope) -> None:
    """The distribution registry with one bcrypt htpasswd account for the jobs."""
    registry_user = "ci"
    registry_password = scope.password("registry")
    registry = scope.image("registry")
    scope.secret(
        "registry-credentials", {"username": registry_user, "password": registry_password.result}
    )
    scope.release(
        "registry",
        charts.REGISTRY,
        {
            "fullnameOverride": "registry",
            # bcrypt, as the distribution registry's htpasswd auth requires
            "secrets": {
                "htpasswd": pulumi.Output.concat(registry_user, ":", registry_password.bcrypt_hash)
            },
            "image": registry.values(),
            "persistence": {"enabled": True, **_persistence(scope, "20Gi")},
            "resources": SMALL,
            "securityContext": {"enabled": True, **RUN_AS_CI},
            "containerSecurityContext": {"enabled": True, **RESTRICTED_CONTAINER},
        },
    )


def _persistence(scope: Scope, size: str) -> dict[str, Any]:
    volume: dict[str, Any] = {"size": size}
    if scope.site.storage_class:
        volume["storageClass"] = scope.site.storage_class
    return volume


def _argo(scope: Scope) -> None:
    """The controller watches this namespace only (namespaced Roles, no ClusterRole for
    workflows); workflows run as WORKFLOW_ACCOUNT, which may only report task results."""
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
                "resources": SMALL,
                "securityContext": RESTRICTED_CONTAINER,
            },
            "executor": {
                "image": executor.parts(),
                "resources": SMALL,
                "securityContext": RESTRICTED_CONTAINER,
            },
            "server": {
                "image": server.parts(),
                "clusterWorkflowTemplates": {"enabled": False},
                "enabled": True,
                "authModes": ["client"],
                "resources": SMALL,
                "securityContext": RESTRICTED_CONTAINER,
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


def _mlflow(scope: Scope) -> None:
    """MLflow serves the artifact store itself (--serve-artifacts): jobs need only the
    tracking URL and their account, never the MinIO credentials. It speaks only HTTPS (a
    certificate of the namespace's authority) and lets in only accounts of its basic-auth
    app: an administrator the program generates and the pipeline jobs' account, which owns
    the experiments it creates (others get no permission by default)."""
    db_password = scope.password("mlflow-db")
    db_url = pulumi.Output.concat("postgresql://mlflow:", db_password.result, "@mlflow-db/mlflow")
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
    scope.secret("mlflow-ci", {"username": MLFLOW_JOB_USER, "password": jobs.result})
    tls_secret = scope.tls_secret("mlflow")
    labels = {"app.kubernetes.io/name": "mlflow"}
    scope.service_account("mlflow")
    scope.service("mlflow", labels, {"https": MLFLOW_PORT})
    auth_env = {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": f"{MLFLOW_AUTH_DIR}/{MLFLOW_AUTH_FILE}"}
    mounts = [
        {"name": "auth", "mountPath": MLFLOW_AUTH_DIR, "readOnly": True},
        {"name": "tls", "mountPath": MLFLOW_TLS_DIR, "readOnly": True},
    ]
    accounts = {
        "name": "accounts",
        "image": scope.image("mlflow").ref,
        "command": ["python", "-c", MLFLOW_ACCOUNTS],
        "env": [
            auth_env,
            {"name": "MLFLOW_JOB_USER", "value": MLFLOW_JOB_USER},
            _from_secret("MLFLOW_JOB_PASSWORD", "mlflow-ci", "password"),
        ],
        "volumeMounts": mounts[:1],
    }
    # Secrets reach the server as environment and files, never as arguments: MLflow reads
    # its store URI from MLFLOW_BACKEND_STORE_URI itself.
    container = {
        "name": "mlflow",
        "image": scope.image("mlflow").ref,
        "command": ["mlflow", "server"],
        "args": [
            "--app-name=basic-auth",
            "--host=0.0.0.0",
            f"--port={MLFLOW_PORT}",
            "--artifacts-destination=s3://mlflow",
            "--serve-artifacts",
            f"--allowed-hosts=mlflow,mlflow:{MLFLOW_PORT},localhost,localhost:{MLFLOW_PORT}",
        ],
        "env": [
            auth_env,
            {
                "name": "MLFLOW_UVICORN_OPTS",
                "value": f"--ssl-keyfile={MLFLOW_TLS_DIR}/tls.key "
                f"--ssl-certfile={MLFLOW_TLS_DIR}/tls.crt",
            },
            {"name": "MLFLOW_S3_ENDPOINT_URL", "value": f"http://minio:{MINIO_PORT}"},
            _from_secret("MLFLOW_BACKEND_STORE_URI", "mlflow-db", "url"),
            _from_secret("MLFLOW_FLASK_SERVER_SECRET_KEY", "mlflow-auth", "session-key"),
            _from_secret("AWS_ACCESS_KEY_ID", "minio-root", "rootUser"),
            _from_secret("AWS_SECRET_ACCESS_KEY", "minio-root", "rootPassword"),
        ],
        "ports": [{"containerPort": MLFLOW_PORT}],
        "volumeMounts": mounts,
        "readinessProbe": {"httpGet": {"path": "/health", "port": MLFLOW_PORT, "scheme": "HTTPS"}},
    }
    volumes = [
        {"name": "auth", "secret": {"secretName": "mlflow-auth", "defaultMode": 0o400}},
        {"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": 0o400}},
    ]
    spec = scope.pod_spec("mlflow", [container], run_as=RUN_AS, volumes=volumes)
    spec["initContainers"] = [
        {"resources": SMALL, "securityContext": RESTRICTED_CONTAINER, **accounts}
    ]
    scope.deployment("mlflow", labels, spec)


def _from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def workflow_template(scope: Scope, pipeline_file: Path) -> dict[str, Any]:
    """An Argo WorkflowTemplate running the pipeline file's jobs in order, each in a fresh
    pod on the checkout of the given repository and revision."""
    jobs = pipeline_file_schema.parse(yaml.safe_load(pipeline_file.read_text()))
    packages = " ".join(toolchain())
    prelude = [
        # Argo checks the revision out detached, so HEAD is the commit itself.
        'export CI_COMMIT_SHA="$(cat .git/HEAD)"',
        'echo "$CI_COMMIT_SHA" | grep -Eq "^[0-9a-f]{40}$"',
        f'export PATH="{TOOLS}:$HOME/.local/bin:$PATH"',
        f"python -m pip install --quiet --user {packages}",
    ]
    env = [
        {"name": "HOME", "value": "/tmp/home"},
        {"name": "CI_PROJECT", "value": "research-pipeline"},
        {"name": "CI_BRANCH", "value": "{{workflow.parameters.revision}}"},
        {"name": "CI_REPOSITORY", "value": "{{workflow.parameters.repository}}"},
        {"name": "CI_BUILD_URL", "value": "argo:{{workflow.name}}"},
        {"name": "MLFLOW_TRACKING_URI", "value": f"https://mlflow:{MLFLOW_PORT}"},
        {"name": "MLFLOW_TRACKING_SERVER_CERT_PATH", "value": f"{CA_DIR}/{certificates.CA_KEY}"},
        _from_secret("MLFLOW_TRACKING_USERNAME", "mlflow-ci", "username"),
        _from_secret("MLFLOW_TRACKING_PASSWORD", "mlflow-ci", "password"),
        {"name": "CI_REGISTRY", "value": f"registry:{REGISTRY_PORT}"},
        {"name": "CI_REGISTRY_INSECURE", "value": "true"},
        *(
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": "registry-credentials", "key": key}},
            }
            for name, key in (
                ("CI_REGISTRY_USER", "username"),
                ("CI_REGISTRY_PASSWORD", "password"),
            )
        ),
    ]
    templates: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for index, job in enumerate(jobs):
        gpu = job.gpu
        resources: dict[str, Any] = {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }
        if gpu:
            resources["limits"]["nvidia.com/gpu"] = 1
        template: dict[str, Any] = {
            "name": job.name,
            "inputs": {
                "artifacts": [
                    {
                        "name": "source",
                        "path": "/work/src",
                        "git": {
                            "repo": "{{workflow.parameters.repository}}",
                            "revision": "{{workflow.parameters.revision}}",
                        },
                    }
                ]
            },
            "initContainers": [
                {
                    "name": "tools",
                    "image": scope.image("crane").ref,
                    "command": ["cp", "/ko-app/crane", f"{TOOLS}/crane"],
                    "mirrorVolumeMounts": True,
                    "resources": SMALL,
                    "securityContext": RESTRICTED_CONTAINER,
                }
            ],
            "container": {
                "image": scope.image("ci_job").ref,
                "command": ["sh", "-ec"],
                "args": ["\n".join([*prelude, *job.script])],
                "workingDir": "/work/src",
                "env": [*env, {"name": "CI_GPU", "value": "hardware" if gpu else "none"}],
                "volumeMounts": [
                    {"name": "tools", "mountPath": TOOLS},
                    {"name": "testbed-ca", "mountPath": CA_DIR, "readOnly": True},
                ],
                "resources": resources,
                "securityContext": RESTRICTED_CONTAINER,
            },
        }
        if gpu:
            template["tolerations"] = [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ]
        templates.append(template)
        task: dict[str, Any] = {"name": job.name, "template": job.name}
        if index:
            task["depends"] = f"{jobs[index - 1].name}.Succeeded"
        tasks.append(task)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": scope.meta("research-pipeline"),
        "spec": {
            "entrypoint": "pipeline",
            "serviceAccountName": WORKFLOW_ACCOUNT,
            "automountServiceAccountToken": False,
            "executor": {"serviceAccountName": WORKFLOW_ACCOUNT},
            "arguments": {
                "parameters": [
                    {"name": "repository", "value": scope.site.pipeline_repository or ""},
                    {"name": "revision", "value": "main"},
                ]
            },
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [
                {"name": "tools", "emptyDir": {}},
                {"name": "testbed-ca", "configMap": {"name": certificates.CA_CONFIG_MAP}},
            ],
            "podGC": {"strategy": "OnWorkflowSuccess"},
            "activeDeadlineSeconds": 3600,
            "templates": [{"name": "pipeline", "dag": {"tasks": tasks}}, *templates],
        },
    }


def _sample_workflow(scope: Scope) -> None:
    template = workflow_template(scope, SAMPLE / ".wp5-pipeline.yml")
    k8s.apiextensions.CustomResource(
        f"{scope.name}-research-pipeline",
        api_version=template["apiVersion"],
        kind=template["kind"],
        metadata=template["metadata"],
        spec=template["spec"],
        opts=scope.opts,
    )
