"""Baked shared content (the analysis environment and dataset): one content-addressed image
per folder and definition, shared by its instances, mounted read-only; a failed
export leaves no image behind. The bake and an `up` from it run for real in the e2e tests."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from testbeds.bake import bake_tags
from testbeds.errors import DeployError
from testbeds.model.plan import resolve
from testbeds.role_facts import role_facts
from testbeds.targets.local import podman, shared_content
from testbeds.targets.local.baked_registry import baked_refs
from testbeds.targets.local.shared_content import SharedContent, shared_contents

BASE = "localhost/wp5-testbeds-base:0123456789abcdef"


def tags(name: str, **definition_update: object) -> dict[str, str]:
    plan = resolve(name)
    if definition_update:
        plan = replace(plan, definition=plan.definition.model_copy(update=definition_update))
    return {c.variable: c.image for c in shared_contents(plan, BASE)}


def test_the_analysis_environment_and_dataset_are_baked_per_definition() -> None:
    hpc = tags("hpc-access")
    assert set(hpc) == {"analysis_prefix", "analysis_sample_dataset_dir"}
    assert hpc["analysis_prefix"].startswith(
        "localhost/wp5-testbeds-baked-hpc-access-content.analysis-prefix:"
    )
    other_instance = shared_contents(resolve("hpc-access", instance="other"), BASE)
    assert {c.variable: c.image for c in other_instance} == hpc
    composed = tags("research-infrastructure")
    assert composed.keys() == hpc.keys() and composed != hpc
    assert tags("pipelines") == {}


def test_the_key_follows_the_roles_files_and_values(scratch_home: Path) -> None:
    before = tags("hpc-access")
    requirements = scratch_home / "roles" / "analysis" / "files" / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("toolz==1.2.0", "toolz==1.1.0"))
    after = tags("hpc-access")
    assert after["analysis_prefix"] != before["analysis_prefix"]
    unrelated = scratch_home / "roles" / "mlflow" / "defaults" / "main.yml"
    unrelated.write_text(unrelated.read_text() + "\n# another comment\n")
    assert tags("hpc-access") == after
    plan = resolve("hpc-access")
    fewer_rows = {**plan.definition.vars, "analysis_sample_dataset_rows": 1000}
    assert tags("hpc-access", vars=fewer_rows) != after


@pytest.mark.parametrize(
    "prefix", ["/opt/analysis", "/shared", "/shared/../etc/analysis", "/shared/a b", "{{ x }}"]
)
def test_a_folder_off_the_shared_filesystems_is_left_to_the_role(prefix: str) -> None:
    plan = resolve("hpc-access")
    found = tags("hpc-access", vars={**plan.definition.vars, "analysis_prefix": prefix})
    assert "analysis_prefix" not in found
    assert "analysis_sample_dataset_dir" in found


def test_a_node_groups_own_path_is_left_to_the_role() -> None:
    plan = resolve("hpc-access")
    groups = tuple(
        g.model_copy(update={"vars": {**g.vars, "analysis_prefix": "/shared/other"}})
        if i == 0
        else g
        for i, g in enumerate(plan.definition.node_groups)
    )
    assert "analysis_prefix" not in tags("hpc-access", node_groups=groups)


def test_present_content_is_mounted_read_only_at_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = resolve("hpc-access")
    contents = shared_contents(plan, BASE)
    there = contents[0].image
    monkeypatch.setattr(podman, "image_exists", lambda ref: ref == there)
    assert shared_content.mount_args(plan, BASE) == [
        "--mount",
        f"type=image,source={there},destination={contents[0].path}",
    ]


def test_a_bake_runs_the_shared_step_only_when_its_content_is_missing() -> None:
    """The shared step is its own tag: `bake_tags` (install steps) never includes it."""
    plan = resolve("hpc-access")
    assert "analysis_shared" not in bake_tags(plan)
    assert role_facts("analysis").baked_shared == (
        "analysis_prefix",
        "analysis_sample_dataset_dir",
    )


def fake_podman(tmp_path: Path, tar_status: int) -> tuple[Path, Path]:
    """A podman that logs its arguments: `exec` (the tar) exits with tar_status, `import`
    reads its input and succeeds."""
    log = tmp_path / "podman.log"
    script = tmp_path / "podman"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        f'  exec) printf data; echo "tar: broken" >&2; exit {tar_status};;\n'
        "  import) cat > /dev/null; echo sha256:0;;\n"
        "  images) ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


@pytest.mark.parametrize("tar_status", [0, 2])
def test_an_export_that_fails_leaves_no_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tar_status: int
) -> None:
    script, log = fake_podman(tmp_path, tar_status)
    monkeypatch.setattr(podman, "podman_binary", lambda: str(script))
    content = SharedContent("d", "analysis", "analysis_prefix", "/shared/x", "localhost/c-x:1")
    if tar_status:
        with pytest.raises(DeployError, match="tar: broken"):
            shared_content.export("node", content)
    else:
        shared_content.export("node", content)
    # The tar and the import run side by side: their lines come in either order.
    calls = log.read_text().splitlines()
    assert "exec node tar -C /shared/x -c ." in calls
    imports = [c for c in calls if c.startswith("import ")]
    assert imports == [
        "import --quiet --change LABEL=wp5-testbeds.baked-content=d/analysis_prefix - "
        "localhost/c-x:1"
    ]
    assert ("rmi --force localhost/c-x:1" in calls) == bool(tar_status)


def test_baked_content_travels_with_the_group_images() -> None:
    """`bake --push` and `up --baked-from` move the same tags: the groups' and the content's
    (computed from the base image's name, nothing built)."""
    refs = baked_refs(resolve("hpc-access"))
    groups = {g.name for g in resolve("hpc-access").definition.node_groups}
    assert refs.keys() == groups | {"shared analysis_prefix", "shared analysis_sample_dataset_dir"}
    assert refs["shared analysis_prefix"].startswith(
        "localhost/wp5-testbeds-baked-hpc-access-content.analysis-prefix:"
    )
