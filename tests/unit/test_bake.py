"""The cache key of baked images: any change to what a group's image would hold gives a new
tag, and nothing else does; bakes never run the steps that place credentials."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from testbeds.bake import bake_tags
from testbeds.model.plan import resolve
from testbeds.targets.local.baked import baked_image_ref, install_tags

BASE = "localhost/wp5-testbeds-base:0123456789abcdef"


def test_same_inputs_same_tag_per_group() -> None:
    plan = resolve("pipelines")
    first = baked_image_ref(plan, "worker", BASE)
    assert first == baked_image_ref(resolve("pipelines", instance="other"), "worker", BASE)
    assert first.startswith("localhost/wp5-testbeds-baked-pipelines-worker:")
    assert first != baked_image_ref(plan, "gpuworker", BASE)


def test_base_image_change_gives_new_tag() -> None:
    plan = resolve("pipelines")
    assert baked_image_ref(plan, "worker", BASE) != baked_image_ref(plan, "worker", BASE + "0")


def test_role_file_change_gives_new_tag_only_for_groups_with_that_role(scratch_home: Path) -> None:
    plan = resolve("pipelines")
    worker, service = (baked_image_ref(plan, g, BASE) for g in ("worker", "service"))
    defaults = scratch_home / "roles" / "buildbot_worker" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text().replace("pytest==8.4.2", "pytest==8.4.1"))
    assert baked_image_ref(plan, "worker", BASE) != worker
    assert baked_image_ref(plan, "service", BASE) == service


def test_site_and_definition_values_are_part_of_the_key(scratch_home: Path) -> None:
    plan = resolve("pipelines")
    before = baked_image_ref(plan, "worker", BASE)
    common = scratch_home / "inventories" / "local" / "group_vars" / "all" / "common.yml"
    common.write_text(common.read_text() + "common_extra_packages: [htop]\n")
    changed_site = baked_image_ref(plan, "worker", BASE)
    assert changed_site != before
    other_values = replace(
        plan, definition=plan.definition.model_copy(update={"vars": {"mlflow_port": 5002}})
    )
    assert baked_image_ref(other_values, "worker", BASE) != changed_site


def test_bake_runs_only_install_steps_and_never_the_ca() -> None:
    tags = bake_tags(resolve("pipelines"))
    assert "buildbot_worker_install" in tags and "mlflow_install" in tags
    assert not [t for t in tags if t.endswith("_configure")]
    assert not [t for t in tags if t.startswith("testbed_ca")]


def test_what_a_bake_installs_is_what_up_skips_on_a_baked_node() -> None:
    """slurm_compute pulls in slurm through its meta: the bake installs slurm's part too,
    and `up` from the image skips it (and nothing the image lacks)."""
    plan = resolve("hpc-access")
    baked = {t for t in bake_tags(plan) if t.endswith("_install")}
    assert "slurm_install" in baked
    skipped = set(install_tags(r for node in plan.nodes for r in node.roles))
    assert "slurm_install" in skipped
    assert skipped <= baked
