"""The sample pipeline on Kubernetes: an Argo WorkflowTemplate generated from the sample
repository's `.wp5-pipeline.yml`, the file Buildbot reads on the local target, so both run
the same jobs in the same order. Each job is a fresh pod on a checkout of the repository
and revision the workflow is given, with the local workers' Python toolchain, the testbed's
MLflow and registry accounts and its CA; jobs tagged `gpu` ask for an `nvidia.com/gpu`.

Split by concern: what every job's pod is given (`job_environment`, `job_prelude`), one
job's template (`job_template`), the order (`dag_tasks`), and the template around them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
import yaml
from pulumi_kubernetes.core.v1 import (
    ConfigMapVolumeSourceArgs,
    ContainerArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    ResourceRequirementsArgs,
    TolerationArgs,
    VolumeArgs,
    VolumeMountArgs,
)

from testbeds import paths
from testbeds import pipeline_file as pipeline_file_schema
from testbeds.pipeline_file import Job
from testbeds.targets.kubernetes.program import certificates
from testbeds.targets.kubernetes.program.pipeline_services import (
    MLFLOW_JOB_SECRET,
    MLFLOW_PORT,
    REGISTRY_PORT,
    REGISTRY_SECRET,
    RUN_AS,
    WORKFLOW_ACCOUNT,
)
from testbeds.targets.kubernetes.program.scope import (
    RESTRICTED_CONTAINER,
    SMALL,
    Namespace,
    Scope,
    Workload,
    env,
    env_from_secret,
    pod_security,
)

SAMPLE = paths.PACKAGE_DIR / "samples" / "research-pipeline"
PROJECT = "research-pipeline"
# Job containers get crane (an unprivileged OCI image tool) on PATH: buildah, which the
# local workers use, needs user namespaces that restricted Pod Security does not allow.
TOOLS = "/opt/wp5-tools"
# Where job containers find the namespace's CA certificate.
CA_DIR = "/etc/testbed-ca"
SOURCE_DIR = "/work/src"
JOB_REQUESTS: dict[str, Any] = {"cpu": "500m", "memory": "1Gi"}
JOB_LIMITS: dict[str, Any] = {"cpu": "2", "memory": "4Gi"}
DEADLINE_S = 3600


def toolchain() -> list[str]:
    """The packages the local CI workers pin, so jobs see the same versions here."""
    defaults = paths.roles_dir() / "buildbot_worker" / "defaults" / "main.yml"
    return list(yaml.safe_load(defaults.read_text())["buildbot_worker_python_packages"])


def job_prelude() -> list[str]:
    """What every job's script starts with: the commit, the tools on PATH, the toolchain."""
    return [
        # Argo checks the revision out detached, so HEAD is the commit itself.
        'export CI_COMMIT_SHA="$(cat .git/HEAD)"',
        'echo "$CI_COMMIT_SHA" | grep -Eq "^[0-9a-f]{40}$"',
        f'export PATH="{TOOLS}:$HOME/.local/bin:$PATH"',
        f"python -m pip install --quiet --user {' '.join(toolchain())}",
    ]


def job_environment() -> list[EnvVarArgs]:
    """The variables a job sees, as on the local workers: the pipeline's names, and the
    testbed's MLflow and registry with the jobs' accounts (from Secrets, never values)."""
    return [
        env("HOME", "/tmp/home"),
        env("CI_PROJECT", PROJECT),
        env("CI_BRANCH", "{{workflow.parameters.revision}}"),
        env("CI_REPOSITORY", "{{workflow.parameters.repository}}"),
        env("CI_BUILD_URL", "argo:{{workflow.name}}"),
        env("MLFLOW_TRACKING_URI", f"https://mlflow:{MLFLOW_PORT}"),
        env("MLFLOW_TRACKING_SERVER_CERT_PATH", f"{CA_DIR}/{certificates.CA_KEY}"),
        env_from_secret("MLFLOW_TRACKING_USERNAME", MLFLOW_JOB_SECRET, "username"),
        env_from_secret("MLFLOW_TRACKING_PASSWORD", MLFLOW_JOB_SECRET, "password"),
        env("CI_REGISTRY", f"registry:{REGISTRY_PORT}"),
        env("CI_REGISTRY_INSECURE", "true"),
        env_from_secret("CI_REGISTRY_USER", REGISTRY_SECRET, "username"),
        env_from_secret("CI_REGISTRY_PASSWORD", REGISTRY_SECRET, "password"),
    ]


@dataclass(frozen=True)
class JobTemplate:
    """One job as an Argo template: its checkout, the tools copied in, its container."""

    name: str
    init_container: ContainerArgs
    container: ContainerArgs
    tolerations: list[TolerationArgs]

    def as_template(self) -> dict[str, Any]:
        template: dict[str, Any] = {
            "name": self.name,
            "inputs": {
                "artifacts": [
                    {
                        "name": "source",
                        "path": SOURCE_DIR,
                        "git": {
                            "repo": "{{workflow.parameters.repository}}",
                            "revision": "{{workflow.parameters.revision}}",
                        },
                    }
                ]
            },
            # Argo's own field: the init container sees the job's volume mounts.
            "initContainers": [{"mirrorVolumeMounts": True, **_fields(self.init_container)}],
            "container": self.container,
        }
        if self.tolerations:
            template["tolerations"] = self.tolerations
        return template


def _fields(container: ContainerArgs) -> dict[str, Any]:
    """A typed container's fields under their Kubernetes names, to extend with Argo's."""
    return {
        "name": container.name,
        "image": container.image,
        "command": container.command,
        "resources": container.resources,
        "securityContext": container.security_context,
    }


def job_template(
    scope: Scope, job: Job, prelude: list[str], variables: list[EnvVarArgs]
) -> JobTemplate:
    limits = {**JOB_LIMITS, "nvidia.com/gpu": 1} if job.gpu else JOB_LIMITS
    return JobTemplate(
        name=job.name,
        init_container=ContainerArgs(
            name="tools",
            image=scope.image("crane").ref,
            command=["cp", "/ko-app/crane", f"{TOOLS}/crane"],
            resources=SMALL,
            security_context=RESTRICTED_CONTAINER,
        ),
        # Argo names a template's container `main` whatever it is given.
        container=ContainerArgs(
            name="main",
            image=scope.image("ci_job").ref,
            command=["sh", "-ec"],
            args=["\n".join([*prelude, *job.script])],
            working_dir=SOURCE_DIR,
            env=[*variables, env("CI_GPU", "hardware" if job.gpu else "none")],
            volume_mounts=[
                VolumeMountArgs(name="tools", mount_path=TOOLS),
                VolumeMountArgs(name="testbed-ca", mount_path=CA_DIR, read_only=True),
            ],
            resources=ResourceRequirementsArgs(requests=JOB_REQUESTS, limits=limits),
            security_context=RESTRICTED_CONTAINER,
        ),
        tolerations=(
            [TolerationArgs(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
            if job.gpu
            else []
        ),
    )


def dag_tasks(jobs: list[Job]) -> list[dict[str, str]]:
    """The jobs one after another, each when the one before succeeded."""
    tasks = []
    for index, job in enumerate(jobs):
        task = {"name": job.name, "template": job.name}
        if index:
            task["depends"] = f"{jobs[index - 1].name}.Succeeded"
        tasks.append(task)
    return tasks


def workflow_template(scope: Scope, pipeline_file: Path) -> dict[str, Any]:
    """The WorkflowTemplate's spec running the pipeline file's jobs in order, each in a
    fresh pod on the checkout of the given repository and revision."""
    jobs = pipeline_file_schema.parse(yaml.safe_load(pipeline_file.read_text()))
    prelude, variables = job_prelude(), job_environment()
    templates = [job_template(scope, job, prelude, variables).as_template() for job in jobs]
    return {
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
        "securityContext": pod_security(RUN_AS),
        "volumes": [
            VolumeArgs(name="tools", empty_dir=EmptyDirVolumeSourceArgs()),
            VolumeArgs(
                name="testbed-ca",
                config_map=ConfigMapVolumeSourceArgs(name=certificates.CA_CONFIG_MAP),
            ),
        ],
        "podGC": {"strategy": "OnWorkflowSuccess"},
        "activeDeadlineSeconds": DEADLINE_S,
        "templates": [{"name": "pipeline", "dag": {"tasks": dag_tasks(jobs)}}, *templates],
    }


class SampleWorkflow(Workload):
    """The sample repository's pipeline as a WorkflowTemplate (Argo's custom resource)."""

    kind = "Workflow"

    def __init__(self, namespace: Namespace) -> None:
        super().__init__(namespace, PROJECT)
        k8s.apiextensions.CustomResource(
            f"{self.scope.name}-{PROJECT}",
            api_version="argoproj.io/v1alpha1",
            kind="WorkflowTemplate",
            metadata=self.scope.meta(PROJECT),
            spec=workflow_template(self.scope, SAMPLE / ".wp5-pipeline.yml"),
            opts=self.scope.opts,
        )
        self.done()
