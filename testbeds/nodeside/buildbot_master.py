"""The Buildbot master of the pipelines testbed. The buildbot_master role copies this
package's files it needs into the master's folder; master.cfg there only passes this
testbed's values (wp5-master.json) to `configure`.

A push (the git server's post-receive hook, through the PB change source) starts the
`pipeline` builder on the master's local worker: it checks the commit out, reads the
repository's pipeline file (testbeds/pipeline_file.py, copied beside this module) and
triggers one build per job, in order, on the `job-cpu`, `job-gpu` or `job-hpc` builder. A
failed job stops the pipeline: later jobs (those that publish) never run. An HPC job's
script runs on the cluster: the gateway worker hands it to wp5-hpc-job, which runs it as a
Slurm job in the job's image and answers with the Slurm job's output and exit code."""

from __future__ import annotations

from typing import Any

import yaml
from buildbot.plugins import changes, schedulers, secrets, steps, util, worker
from buildbot.process import buildstep, results
from buildbot.steps.worker import CompositeStepMixin
from twisted.internet import defer

from testbeds.nodeside.master_settings import Settings
from testbeds.pipeline_file import FILE_NAME, Job, PipelineFileError, parse


class RunPipeline(buildstep.BuildStep, CompositeStepMixin):  # type: ignore[misc]
    """Read the pipeline file of the checked-out commit and queue a trigger per job."""

    name = "read pipeline"
    haltOnFailure = True

    def __init__(self, gpu_available: bool, hpc_available: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gpu_available = gpu_available
        self.hpc_available = hpc_available

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def run(self) -> Any:
        text = yield self.getFileContentFromWorker(FILE_NAME)
        if text is None:
            yield self.addCompleteLog("error", f"the commit has no {FILE_NAME}")
            return results.FAILURE
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            yield self.addCompleteLog("error", f"{FILE_NAME}: {error}")
            return results.FAILURE
        try:
            jobs = parse(document, self.gpu_available, self.hpc_available)
        except PipelineFileError as error:
            yield self.addCompleteLog("error", "\n".join(error.problems))
            return results.FAILURE
        self.build.addStepsAfterCurrentStep(
            [
                steps.Trigger(
                    name=f"job {job.name}",
                    schedulerNames=[scheduler_of(job)],
                    waitForFinish=True,
                    haltOnFailure=True,
                    updateSourceStamp=True,
                    set_properties={
                        "job_name": job.name,
                        "job_script": list(job.script),
                        "job_image": job.image,
                        "job_gpu": job.gpu,
                    },
                )
                for job in jobs
            ]
        )
        yield self.addCompleteLog("jobs", "\n".join(job.name for job in jobs))
        return results.SUCCESS


def scheduler_of(job: Job) -> str:
    return "jobs-hpc" if job.hpc else "jobs-gpu" if job.gpu else "jobs-cpu"


@util.renderer  # type: ignore[untyped-decorator]
def job_command(props: Any) -> list[str]:
    return ["bash", "-euo", "pipefail", "-c", "\n".join(props.getProperty("job_script"))]


# Where the HPC job's script is written in the checkout, for wp5-hpc-job to take along.
HPC_SCRIPT = ".wp5-hpc-script"


@util.renderer  # type: ignore[untyped-decorator]
def hpc_script(props: Any) -> str:
    return "\n".join(props.getProperty("job_script")) + "\n"


@util.renderer  # type: ignore[untyped-decorator]
def hpc_command(props: Any) -> list[str]:
    gpu = ["--gpu"] if props.getProperty("job_gpu") else []
    return ["wp5-hpc-job", "--image", props.getProperty("job_image"), *gpu, HPC_SCRIPT]


def job_environment(settings: Settings) -> dict[str, Any]:
    """What a job is told about the testbed's services; passwords come from the secrets
    provider, so Buildbot hides them in logs."""
    return {
        "PATH": [settings.job_path, "${PATH}"],
        "CI_COMMIT_SHA": util.Property("got_revision"),
        "CI_BRANCH": util.Property("branch"),
        "CI_PROJECT": util.Property("project"),
        "CI_REPOSITORY": util.Property("repository"),
        "CI_JOB_NAME": util.Property("job_name"),
        "CI_WORKER": util.Property("workername"),
        "CI_BUILD_URL": util.Interpolate("buildbot:%(prop:buildername)s/%(prop:buildnumber)s"),
        "CI_REGISTRY": settings.registry,
        "CI_REGISTRY_USER": settings.registry_user,
        "CI_REGISTRY_PASSWORD": util.Interpolate("%(secret:registry-password)s"),
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_user,
        "MLFLOW_TRACKING_PASSWORD": util.Interpolate("%(secret:mlflow-password)s"),
        "MLFLOW_TRACKING_SERVER_CERT_PATH": settings.mlflow_ca_file,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def job_step(settings: Settings, name: str, command: Any) -> Any:
    """Run a job's command on its worker, told about the testbed's services."""
    return steps.ShellCommand(
        name=name,
        command=command,
        env=job_environment(settings),
        timeout=settings.job_timeout_s,
        haltOnFailure=True,
    )


def hpc_job_factory(settings: Settings, checkout: Any) -> Any:
    """Check out, write the job's script beside the checkout, hand both to wp5-hpc-job."""
    return util.BuildFactory(
        [
            checkout,
            steps.StringDownload(hpc_script, workerdest=HPC_SCRIPT, mode=0o600),
            job_step(settings, "slurm job", hpc_command),
        ]
    )


def configure(values: dict[str, Any]) -> dict[str, Any]:
    """The BuildmasterConfig for this testbed's values."""
    settings = Settings(values)

    def checkout() -> Any:
        return steps.Git(
            repourl=util.Property("repository"), mode="full", method="clobber", haltOnFailure=True
        )

    gpu = bool(settings.gpu_workers)
    hpc = bool(settings.hpc_workers)
    pipeline = util.BuildFactory([checkout(), RunPipeline(gpu_available=gpu, hpc_available=hpc)])
    job = util.BuildFactory([checkout(), job_step(settings, "script", job_command)])
    builders = [
        util.BuilderConfig(
            name="pipeline", workernames=["orchestrator"], factory=pipeline, collapseRequests=False
        )
    ]
    triggerable = []
    # One builder per kind of job, on its workers, with the scheduler pipelines trigger.
    kinds = [("cpu", settings.cpu_workers, job)]
    if gpu:
        kinds.append(("gpu", settings.gpu_workers, job))
    if hpc:
        kinds.append(("hpc", settings.hpc_workers, hpc_job_factory(settings, checkout())))
    for kind, workers, factory in kinds:
        builders.append(
            util.BuilderConfig(
                name=f"job-{kind}", workernames=workers, factory=factory, collapseRequests=False
            )
        )
        triggerable.append(
            schedulers.Triggerable(name=f"jobs-{kind}", builderNames=[f"job-{kind}"])
        )
    return {
        "title": "wp5-testbeds pipelines",
        "buildbotNetUsageData": None,
        "db": {"db_url": "sqlite:///state.sqlite"},
        "protocols": {"pb": {"port": settings.pb_port}},
        "secretsProviders": [secrets.SecretInAFile(dirname=str(settings.secrets_dir))],
        "workers": [worker.LocalWorker("orchestrator")]
        + [
            worker.Worker(name, settings.secret(f"worker-{name}"), max_builds=1)
            for name in sorted(settings.workers)
        ],
        "change_source": [
            changes.PBChangeSource(
                user=settings.change_user, passwd=settings.secret("change-password")
            )
        ],
        "schedulers": [
            schedulers.AnyBranchScheduler(
                name="on-push", builderNames=["pipeline"], treeStableTimer=None
            ),
            *triggerable,
        ],
        "builders": builders,
    }
