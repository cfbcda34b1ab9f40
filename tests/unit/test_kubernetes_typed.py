"""The Kubernetes program builds its objects from pulumi_kubernetes' typed arguments, and
its workloads are components with typed arguments of their own.

Run under Pulumi's mocks (no cluster or Pulumi CLI here): every Kubernetes resource the
program creates for each shipped testbed is caught as it is constructed, and each of its
arguments is walked. A mapping is allowed only as a map of scalars (labels, a ConfigMap's
data, a quota's amounts); a mapping holding mappings or lists is an object written as a
loose dict. The two exceptions are what has no typed form: a Helm release's chart values
(the chart defines them; tests/unit/test_kubernetes_charts.py renders them with the pinned
charts) and the spec of Argo's WorkflowTemplate (a custom resource, whose pod pieces are
typed inside it)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from testbeds.targets.kubernetes.program import data_movement, hpc_access, pipelines, workflow
from testbeds.targets.kubernetes.program.hpc_access import VIRTUAL_KUBELET
from testbeds.targets.kubernetes.program.scope import (
    RESTRICTED_CONTAINER_VALUES,
    SMALL_VALUES,
    Workload,
)
from tests.kubernetes_program import TESTBEDS, of_kind, run_program

UNTYPED_BY_DESIGN = {("Release", "values"), ("CustomResource", "spec")}


def loose_dicts(value: Any, path: str) -> Iterator[str]:
    """Paths inside `value` where an object is a dict rather than a typed argument."""
    if pulumi._types.is_input_type(type(value)):
        for name, item in vars(value).items():
            yield from loose_dicts(item, f"{path}.{name}")
    elif isinstance(value, dict):
        if any(isinstance(item, dict | list) for item in value.values()):
            yield path
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from loose_dicts(item, f"{path}[{index}]")


def resource_classes() -> Iterator[type[pulumi.CustomResource]]:
    seen: set[type] = set()
    stack: list[Any] = [k8s]
    while stack:
        module = stack.pop()
        for name, member in vars(module).items():
            if inspect.ismodule(member) and member.__name__.startswith(module.__name__ + "."):
                if name not in ("_utilities", "_inputs", "outputs", "config", "provider"):
                    stack.append(member)
            elif (
                inspect.isclass(member)
                and issubclass(member, pulumi.CustomResource)
                and member not in seen
            ):
                seen.add(member)
                yield member


@pytest.fixture(scope="module")
def constructed() -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """testbed -> (class, resource name, arguments) of every Kubernetes resource made."""
    made: list[tuple[str, str, dict[str, Any]]] = []
    patch = pytest.MonkeyPatch()
    for cls in resource_classes():
        if "_internal_init" not in vars(cls):
            continue
        original = vars(cls)["_internal_init"]

        def catching(
            self: Any, resource_name: str, *args: Any, _o: Any = original, **kw: Any
        ) -> Any:
            made.append((type(self).__name__, resource_name, dict(kw)))
            return _o(self, resource_name, *args, **kw)

        patch.setattr(cls, "_internal_init", catching)
    by_testbed = {}
    try:
        for testbed in TESTBEDS:
            made.clear()
            run_program(testbed)
            by_testbed[testbed] = list(made)
    finally:
        patch.undo()
    return by_testbed


@pytest.mark.parametrize("testbed", TESTBEDS)
def test_every_kubernetes_object_is_built_from_typed_arguments(
    constructed: dict[str, list[tuple[str, str, dict[str, Any]]]], testbed: str
) -> None:
    made = constructed[testbed]
    assert len(made) > 10, made  # the catch works: the program made its objects
    loose = [
        f"{kind} {name}: {where}"
        for kind, name, arguments in made
        for field, value in arguments.items()
        if field != "opts" and (kind, field) not in UNTYPED_BY_DESIGN
        for where in loose_dicts(value, field)
    ]
    assert not loose, loose


def test_each_workload_is_a_component_with_typed_arguments() -> None:
    """Every workload class is a `Workload` (a ComponentResource of its own kind); those
    that take arguments take one frozen dataclass of them."""
    workloads = [
        cls
        for module in (data_movement, hpc_access, pipelines, workflow)
        for cls in vars(module).values()
        if inspect.isclass(cls) and issubclass(cls, Workload) and cls is not Workload
    ]
    assert {cls.kind for cls in workloads} == {
        "FTS3", "Rucio", "XRootD", "JupyterHub", "InterLink",
        "MinIO", "ArgoWorkflows", "MLflow", "Registry", "Workflow",
    }  # fmt: skip
    for cls in workloads:
        parameters = list(inspect.signature(cls.__init__).parameters.values())[2:]
        for parameter in parameters:
            annotation = getattr(inspect.getmodule(cls), str(parameter.annotation))
            assert dataclasses.is_dataclass(annotation), (cls, parameter)
            assert annotation.__dataclass_params__.frozen, (cls, parameter)  # type: ignore[attr-defined]


def test_the_chart_values_of_limits_and_security_are_the_typed_ones() -> None:
    """Charts take the program's container limits and security context as values
    (`SMALL_VALUES`, `RESTRICTED_CONTAINER_VALUES`); they are what the typed `SMALL` and
    `RESTRICTED_CONTAINER` become on the wire, as on the program's own pods."""
    (kubelet,) = [
        d for d in of_kind(run_program("hpc-access"), "Deployment")
        if d["metadata"]["name"] == VIRTUAL_KUBELET
    ]  # fmt: skip
    (container,) = kubelet["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == SMALL_VALUES
    assert container["securityContext"] == RESTRICTED_CONTAINER_VALUES
