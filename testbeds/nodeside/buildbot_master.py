"""The Buildbot master of the pipelines testbed. The buildbot_master role copies this
package's files it needs into the master's folder; master.cfg there only passes this
testbed's values (wp5-master.json) to `configure`.

A push (the git server's post-receive hook, through the PB change source) starts the
`pipeline` builder on the master's local worker: it checks the commit out, reads the
repository's pipeline file (testbeds/pipeline_file.py, copied beside this module) and
triggers one build per job, in order, on the `job-cpu`, `job-gpu` or `job-hpc` builder. A
failed job stops the pipeline: later jobs (those that publish) never run. An HPC job's
script runs on the cluster: the gateway worker hands it to wp5-hpc-job, which runs it as a
Slurm job in the job's image and answers with the Slurm job's output and exit code.

No job holds a password of any account. Each job build gets a credential of its own
(testbeds/nodeside/job_tokens.py), minted when its step starts, for the registry and MLflow
on this node, writing only into its project's registry namespace; it is revoked when the
build ends, whatever its result, and every credential is dropped when the master starts.
An HPC job runs its image by the digest a job of its own pipeline (same project, same
commit) pushed, read from the registry's push log (image_pins.py), never by the tag.
Where the instance has a token issuer and the project a client there, an HPC job also gets
datalake tokens minted for it when its step starts (datalake_tokens.py), with which
wp5-hpc-job puts the job's results into Rucio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from buildbot.plugins import changes, schedulers, secrets, steps, util, worker
from buildbot.process import buildstep, remotecommand, results
from twisted.internet import defer, threads

from testbeds.nodeside.datalake_tokens import ENVIRONMENT_VARIABLE as DATALAKE_TOKENS
from testbeds.nodeside.datalake_tokens import JobTokens
from testbeds.nodeside.image_pins import name_and_tag, pinned_digest
from testbeds.nodeside.job_tokens import JobCredential, JobTokenStore
from testbeds.nodeside.master_settings import Settings
from testbeds.pipeline_file import FILE_NAME, Job, PipelineFileError, parse, regular_file_blob


class RunPipeline(buildstep.BuildStep):  # type: ignore[misc]
    """Read the pipeline file of the checked-out commit and queue a trigger per job. The file
    is read from git's objects, not from the working tree, and only as a regular file: a
    commit that makes it a link cannot make the master read anything else."""

    name = "read pipeline"
    haltOnFailure = True

    def __init__(self, gpu_available: bool, hpc_available: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gpu_available = gpu_available
        self.hpc_available = hpc_available

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def git_output(self, *args: str) -> Any:
        command = remotecommand.RemoteShellCommand(
            self.workdir, ["git", *args], collectStdout=True, logEnviron=False
        )
        yield self.runCommand(command)
        return command.stdout if command.rc == 0 else None

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def run(self) -> Any:
        listing = yield self.git_output("ls-tree", "HEAD", "--", FILE_NAME)
        try:
            blob = regular_file_blob(listing or "")
        except PipelineFileError as error:
            yield self.addCompleteLog("error", "\n".join(error.problems))
            return results.FAILURE
        text = yield self.git_output("cat-file", "blob", blob)
        if text is None:
            yield self.addCompleteLog("error", f"{FILE_NAME}: git could not read it")
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


def job_command(runner: str) -> Any:
    """A job's script, run by the worker's runner as the jobs' own account, in a unit of
    its own (the worker's account holds the worker's password)."""

    @util.renderer  # type: ignore[untyped-decorator]
    def render(props: Any) -> list[str]:
        script = "\n".join(props.getProperty("job_script"))
        return ["sudo", "-n", runner, "bash", "-euo", "pipefail", "-c", script]

    return render


def stop_job_units(runner: str) -> Any:
    """Whatever the job step came to (even killed by Buildbot), nothing of it runs on."""
    return steps.ShellCommand(
        name="stop the job's processes",
        command=["sudo", "-n", runner, "--stop"],
        alwaysRun=True,
        hideStepIf=True,
        haltOnFailure=False,
        flunkOnFailure=False,
        logEnviron=False,
    )


@util.renderer  # type: ignore[untyped-decorator]
def hpc_script(props: Any) -> str:
    return "\n".join(props.getProperty("job_script")) + "\n"


@util.renderer  # type: ignore[untyped-decorator]
def hpc_command(props: Any) -> list[str]:
    gpu = ["--gpu"] if props.getProperty("job_gpu") else []
    image = ["--image", props.getProperty("job_image"), "--digest", props.getProperty(PINNED)]
    return ["wp5-hpc-job", *image, *gpu]


# The build property holding the digest an HPC job runs.
PINNED = "job_image_digest"


class JobCredentials:
    """The credentials of the builds running now, one per build, minted on first use."""

    def __init__(self, store: JobTokenStore, lifetime_s: float) -> None:
        self.store = store
        self.lifetime_s = lifetime_s
        self._live: dict[tuple[str, int], JobCredential] = {}
        # Every credential minted since the master started: its (project, commit).
        self._minted_for: dict[str, tuple[str, str]] = {}

    def of(self, props: Any) -> JobCredential:
        build = (str(props.getProperty("buildername")), int(props.getProperty("buildnumber")))
        if build not in self._live:
            project = str(props.getProperty("project"))
            self._live[build] = self.store.mint(project, self.lifetime_s)
            commit = str(props.getProperty("got_revision") or "")
            self._minted_for[self._live[build].user] = (project, commit)
        credential = self._live[build]
        # Hidden in every log of the build, like a secret of the secrets provider.
        props.useSecret(credential.token, "job token")
        return credential

    def users_for(self, project: str, commit: str) -> set[str]:
        """The credentials minted for jobs of this project at this commit."""
        return {user for user, made in self._minted_for.items() if made == (project, commit)}

    def revoke(self, props: Any) -> None:
        build = (str(props.getProperty("buildername")), int(props.getProperty("buildnumber")))
        credential = self._live.pop(build, None)
        if credential is not None:
            self.store.revoke(credential.user)


class RevokeJobCredential(buildstep.BuildStep):  # type: ignore[misc]
    """The build's last step, run whatever came before: its credential stops working."""

    name = "revoke job credential"
    alwaysRun = True
    hideStepIf = True

    def __init__(self, credentials: JobCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials

    def run(self) -> Any:
        self.credentials.revoke(self.build.getProperties())
        return results.SUCCESS


class PinImage(buildstep.BuildStep):  # type: ignore[misc]
    """Before an HPC job: the digest a job of this pipeline pushed as the job's image
    (its project's credentials at its commit, in the registry's push log), or the build
    fails saying so. The tag itself is never read: a member could have moved it."""

    name = "pin the image"
    haltOnFailure = True

    def __init__(
        self, credentials: JobCredentials, push_log: str, registry: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials
        self.push_log = push_log
        self.registry = registry

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def run(self) -> Any:
        props = self.build.getProperties()
        project = str(props.getProperty("project"))
        commit = str(props.getProperty("got_revision") or "")
        image = str(props.getProperty("job_image"))
        try:
            name, tag = name_and_tag(image, self.registry, project, commit)
        except ValueError as error:
            yield self.addCompleteLog("error", str(error))
            return results.FAILURE
        pushers = self.credentials.users_for(project, commit)
        digest = pinned_digest(Path(self.push_log), name, tag, pushers)
        if digest is None:
            yield self.addCompleteLog(
                "error",
                f"{name}:{tag} was not pushed by a job of this pipeline ({project} at "
                f"{commit[:12]}): an HPC job runs only an image its own pipeline built",
            )
            return results.FAILURE
        self.setProperty(PINNED, digest, self.name)
        yield self.addCompleteLog("pinned", f"{name}:{tag} is {digest}")
        return results.SUCCESS


def job_environment(settings: Settings, credentials: JobCredentials) -> dict[str, Any]:
    """What a job is told about the testbed's services, with its own credential."""

    @util.renderer  # type: ignore[untyped-decorator]
    def user(props: Any) -> str:
        return credentials.of(props).user

    @util.renderer  # type: ignore[untyped-decorator]
    def token(props: Any) -> str:
        return credentials.of(props).token

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
        "CI_REGISTRY_USER": user,
        "CI_REGISTRY_PASSWORD": token,
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": token,
        "MLFLOW_TRACKING_SERVER_CERT_PATH": settings.mlflow_ca_file,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def job_steps(
    settings: Settings,
    credentials: JobCredentials,
    name: str,
    command: Any,
    extra_env: dict[str, Any] | None = None,
    cleanup: Any = None,
) -> list[Any]:
    """Run a job's command on its worker, told about the testbed's services and holding a
    credential of its own, revoked when the build ends (after `cleanup`, if any)."""
    return [
        steps.ShellCommand(
            name=name,
            command=command,
            env={**job_environment(settings, credentials), **(extra_env or {})},
            # The worker would write the environment, credential and all, into its own
            # log in clear (the master masks only the copy it keeps).
            logEnviron=False,
            timeout=settings.job_timeout_s,
            haltOnFailure=True,
        ),
        *([cleanup] if cleanup is not None else []),
        RevokeJobCredential(credentials),
    ]


def datalake_tokens(settings: Settings) -> Any:
    """The HPC job's datalake tokens (JobTokens as JSON: its project and a token per
    audience, or why there are none), minted by its project's client when the step starts;
    empty where the repository's project has no client."""

    @util.renderer  # type: ignore[untyped-decorator]
    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def render(props: Any) -> Any:
        client = settings.datalake_clients.get(str(props.getProperty("project")))
        if client is None or settings.token_issuer is None:
            return ""
        # The issuer answers over the network: not on the master's event loop.
        try:
            tokens = yield threads.deferToThread(settings.token_issuer.tokens, client)
        except (OSError, ValueError) as error:
            # wp5-hpc-job says why the job's results cannot go into the datalake.
            why = f"the issuer gave {client.name} no tokens: {error}"
            return JobTokens(client.project, error=why).to_json()
        for token in tokens.values():
            props.useSecret(token, "datalake token")
        return JobTokens(client.project, tokens).to_json()

    return render


def hpc_job_factory(settings: Settings, credentials: JobCredentials, checkout: Any) -> Any:
    """Check out and hand the checkout to wp5-hpc-job, with the job's script (and datalake
    tokens) in its environment: nothing is written into the checkout, whose names a commit
    controls."""
    environment = {"WP5_JOB_SCRIPT": hpc_script, DATALAKE_TOKENS: datalake_tokens(settings)}
    return util.BuildFactory(
        [
            checkout,
            PinImage(credentials, settings.push_log, settings.registry),
            *job_steps(settings, credentials, "slurm job", hpc_command, environment),
        ]
    )


def configure(values: dict[str, Any]) -> dict[str, Any]:
    """The BuildmasterConfig for this testbed's values."""
    settings = Settings(values)
    store = JobTokenStore(settings.job_tokens_dir)
    # The master is starting: no build of before runs any more, nor may its credential.
    store.revoke_all()
    credentials = JobCredentials(store, settings.job_token_lifetime_s)

    def checkout() -> Any:
        return steps.Git(
            repourl=util.Property("repository"), mode="full", method="clobber", haltOnFailure=True
        )

    gpu = bool(settings.gpu_workers)
    hpc = bool(settings.hpc_workers)
    pipeline = util.BuildFactory([checkout(), RunPipeline(gpu_available=gpu, hpc_available=hpc)])
    job = util.BuildFactory(
        [
            checkout(),
            *job_steps(
                settings,
                credentials,
                "script",
                job_command(settings.job_runner),
                cleanup=stop_job_units(settings.job_runner),
            ),
        ]
    )
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
        kinds.append(
            ("hpc", settings.hpc_workers, hpc_job_factory(settings, credentials, checkout()))
        )
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
        # Workers and the change source connect over TLS only (the testbed CA's host
        # certificate): the port is exposed, and carries every worker's and job's secrets.
        "protocols": {"pb": {"port": settings.pb_endpoint}},
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
