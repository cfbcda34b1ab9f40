"""The Kubernetes target: the Pulumi program in stacks/kubernetes, driven through Pulumi's
Automation API (one stack per instance). It deploys workloads into a namespace of the
site's cluster rather than nodes, so there is nothing for Ansible to configure; `verify`
runs the `kubernetes` check suite in the cluster (testinfra over kubectl)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from testbeds import paths
from testbeds.errors import DefinitionError, PreflightError
from testbeds.model.loader import site_dir
from testbeds.model.plan import Plan
from testbeds.model.schema import TestbedDefinition
from testbeds.nodes import ProvisionedNode
from testbeds.progress import say
from testbeds.state import InstanceRecord, StateDir
from testbeds.targets.base import CheckRun, NodeStatus, require_pulumi, run_stack_operation
from testbeds.targets.kubernetes.site import kubernetes_site, oauth_client_secret_file

PROJECT = "wp5-testbeds-kubernetes"
INTERLINK_TOKEN = "interlink-token"


def stack_dir() -> Path:
    return paths.project_root() / "stacks" / "kubernetes"


def interlink_token_file(plan: Plan) -> Path | None:
    """Where the hpc-access instance's login node left the interLink token, if the plan
    offloads pods to Slurm; None if it does not."""
    site = kubernetes_site(plan)
    if site.interlink is None or "slurm_login" not in plan.roles:
        return None
    return StateDir(site.interlink.slurm_instance).secrets_dir / INTERLINK_TOKEN


def set_secret_config(stack: str, key: str, value: str) -> None:
    """Store a stack secret, the value passed on stdin: the Automation API's set_config
    would put it on `pulumi config set`'s command line, readable by anyone on the host."""
    proc = subprocess.run(
        ["pulumi", "config", "set", "--secret", "--stack", stack, f"{PROJECT}:{key}"],
        input=value,
        cwd=stack_dir(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PreflightError(f"pulumi config set {key} failed: {proc.stderr.strip()[-500:]}")


class KubernetesTarget:
    name = "kubernetes"
    configures_nodes = False
    provides_shared_filesystems = False
    keeps_hosts = False
    starts_elastic_nodes = False
    hardware_notes: dict[str, str] = {
        "gpus": "GPU jobs request nvidia.com/gpu from the cluster's device plugin",
        "infiniband": "not used: MPI runs on the Slurm cluster the virtual node offloads to",
    }

    def checks(self, definition: TestbedDefinition, record: InstanceRecord) -> CheckRun:
        """Workloads are checked in the cluster: the namespace, through kubectl."""
        return CheckRun(
            ("kubernetes",),
            {"WP5_K8S_NAMESPACE": record.namespace or "", "WP5_K8S_CONTEXT": record.context},
        )

    def preflight(self, plan: Plan) -> None:
        kubernetes_site(plan)  # names a missing site.yml field
        oauth = oauth_client_secret_file(plan)
        if oauth is not None and not oauth.is_file():
            raise DefinitionError(
                site_dir(plan.site.name) / "site.yml",
                "kubernetes.jupyterhub_oauth.client_secret_file",
                f"{oauth}: no such file",
            )
        token = interlink_token_file(plan)
        if token is not None and not token.is_file():
            raise PreflightError(
                f"{plan.name} offloads pods to Slurm through interLink, but {token} does not "
                f"exist: bring up hpc-access instance {token.parent.parent.name!r} on its "
                "Slurm target first (its login node's interlink role writes the token)"
            )
        require_pulumi(self.name)

    def provision(self, plan: Plan, state: StateDir) -> list[ProvisionedNode]:
        from pulumi import automation as auto

        stack = auto.create_or_select_stack(stack_name=plan.instance, work_dir=str(stack_dir()))
        config = {"testbed": plan.name, "site": plan.site.name, "instance": plan.instance}
        for key, value in config.items():
            stack.set_config(f"{PROJECT}:{key}", auto.ConfigValue(value=value))
        token = interlink_token_file(plan)
        if token is not None:
            set_secret_config(plan.instance, "interlinkToken", token.read_text().strip())
        oauth = oauth_client_secret_file(plan)
        if oauth is not None:
            set_secret_config(plan.instance, "jupyterhubOAuthSecret", oauth.read_text().strip())
        context = kubernetes_site(plan).context
        if context:
            stack.set_config("kubernetes:context", auto.ConfigValue(value=context))
        say(f"pulumi up: stack {plan.instance} in {stack_dir()}")
        result = run_stack_operation(stack, "up", lambda line: say(f"  {line.rstrip()}"))
        namespace = result.outputs["namespace"].value
        state.write_record(
            replace(state.read_record(), namespace=str(namespace), context=context or "")
        )
        say(f"namespace {namespace} deployed")
        return []

    def status(self, instance: str) -> list[NodeStatus]:
        stack = self._existing(instance)
        if stack is None:
            return []
        outputs: dict[str, Any] = stack.outputs()
        namespace = outputs.get("namespace")
        return (
            [] if namespace is None else [NodeStatus(str(namespace.value), "deployed", "namespace")]
        )

    def destroy(self, instance: str) -> list[str]:
        stack = self._existing(instance)
        if stack is None:
            return []
        result = run_stack_operation(stack, "destroy", lambda line: say(f"  {line.rstrip()}"))
        stack.workspace.remove_stack(instance)
        return [f"pulumi stack {instance} ({result.summary.resource_changes or {}})"]

    def leftovers(self, instance: str) -> list[str]:
        return [] if self._existing(instance) is None else [f"pulumi stack {instance}"]

    def _existing(self, instance: str) -> Any:
        from pulumi import automation as auto

        require_pulumi(self.name)
        try:
            return auto.select_stack(stack_name=instance, work_dir=str(stack_dir()))
        except auto.StackNotFoundError:
            return None
