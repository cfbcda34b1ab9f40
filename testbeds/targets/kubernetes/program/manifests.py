"""Every object the Kubernetes program would create, without a cluster or the Pulumi CLI:
the program run offline (testbeds/targets/cloud/offline.py), each Helm release it asks for
rendered from the pinned chart with exactly its values (`helm template`), written one file
per object for `testbed show NAME --target kubernetes --manifests DIR`. Secret values never
appear: a Secret's data are placeholders, and what the program would generate or be given
(passwords, the interLink token, the OAuth client secret) are placeholders already."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import yaml

from testbeds.errors import UsageError
from testbeds.targets.cloud.offline import RecordingMocks

if TYPE_CHECKING:
    from testbeds.model.plan import Plan
    from testbeds.targets.kubernetes.helm import Helm

RELEASE = "kubernetes:helm.sh/v3:Release"
CUSTOM = "kubernetes:argoproj.io/v1alpha1:WorkflowTemplate"
# Kinds without a namespace (a release's other objects land in the release's).
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
     "PersistentVolume", "StorageClass", "PriorityClass"}
)  # fmt: skip
# What the program is given from outside in a real run (`testbed up` passes them).
GIVEN_PLACEHOLDERS = {
    "interlinkToken": "<interlink token, from the Slurm login node>",
    "jupyterhubOAuthSecret": "<JupyterHub's OAuth client secret, from the site's file>",
}
SECRET_PLACEHOLDER = "<secret>"
FILE_PART = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Release:
    """One Helm release as the program asks for it."""

    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Declared:
    """What the program declares: objects of built-in kinds, its custom resources, and
    its Helm releases (to be rendered)."""

    objects: list[dict[str, Any]]
    custom: list[dict[str, Any]]
    releases: list[Release]


def declared(mocks: RecordingMocks) -> Declared:
    """What a run of the program under `mocks` declared."""
    objects = [
        state
        for typ, _, state in mocks.resources
        if typ.startswith("kubernetes:") and typ not in (RELEASE, CUSTOM)
    ]
    custom = [state for _, state in mocks.of_type(CUSTOM)]
    releases = [
        Release(
            name=state["name"],
            chart=state["chart"],
            version=state["version"],
            namespace=state["namespace"],
            values=whole_numbers(state["values"]),
        )
        for _, state in mocks.of_type(RELEASE)
    ]
    return Declared(objects, custom, releases)


def whole_numbers(value: Any) -> Any:
    """Pulumi carries every number as a double; the program passed whole numbers as int
    (a chart's schema tells `integer` from `number`)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def run_offline(plan: Plan) -> Declared:
    """The program for this plan, run under Pulumi's mocks."""
    from testbeds.targets.kubernetes.program import testbed_program

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="wp5-testbeds-kubernetes", stack="offline")

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def build() -> None:
        testbed_program(plan, GIVEN_PLACEHOLDERS.__getitem__)

    build()
    return declared(mocks)


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A release's object with the release's namespace where it is namespaced."""
    if obj["kind"] not in CLUSTER_SCOPED:
        obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    return obj


def everything(found: Declared, helm: Helm, kube_version: str) -> list[dict[str, Any]]:
    """Every object a cluster would get: the program's own, its custom resources and each
    release's rendered objects."""
    rendered = [
        in_namespace(obj, release.namespace)
        for release in found.releases
        for obj in helm.template(release, kube_version)
    ]
    return [*found.objects, *found.custom, *rendered]


def without_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with a Secret's values replaced by placeholders."""
    if obj.get("kind") != "Secret":
        return obj
    hidden = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            hidden[field] = {key: SECRET_PLACEHOLDER for key in obj[field]}
    return hidden


def file_name(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    parts = [metadata.get("namespace") or "_cluster", obj.get("kind", "Object"), metadata["name"]]
    return "--".join(FILE_PART.sub("_", str(part)) for part in parts) + ".yaml"


def refuse_used_folder(folder: Path) -> None:
    """Only a new or empty folder: nothing there is overwritten or removed."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"--manifests {folder}: not an empty folder (nothing is overwritten)")


def write_manifests(objects: Iterable[dict[str, Any]], folder: Path) -> list[Path]:
    """One YAML file per object in `folder`, which must be new or empty. Two objects of one
    name and kind are refused."""
    refuse_used_folder(folder)
    planned: dict[str, dict[str, Any]] = {}
    for obj in objects:
        name = file_name(obj)
        if name in planned:
            raise ValueError(f"two objects would be written as {name}")
        planned[name] = without_secrets(obj)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, obj in sorted(planned.items()):
        path = folder / name
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        written.append(path)
    return written
