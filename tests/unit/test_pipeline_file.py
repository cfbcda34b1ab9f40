"""The pipeline file's one schema (testbeds/pipeline_file.py): the sample parses, and each
kind of mistake is named by field, the same words whichever target reads it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from testbeds import pipeline_file
from testbeds.targets.kubernetes.program.workflow import SAMPLE


def test_the_sample_pipeline_parses() -> None:
    jobs = pipeline_file.parse(yaml.safe_load((SAMPLE / pipeline_file.FILE_NAME).read_text()))
    assert [(j.name, j.gpu) for j in jobs] == [("test", False), ("train", True), ("image", False)]
    assert all(job.script for job in jobs)


GOOD = {"name": "test", "script": ["pytest"]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "'jobs' must be a non-empty list"),
        ({"jobs": []}, "'jobs' must be a non-empty list"),
        ({"jobs": [GOOD], "stages": []}, "unknown key(s) ['stages']"),
        ({"jobs": [{"script": ["x"]}]}, "jobs[0].name must be a non-empty string"),
        ({"jobs": [GOOD, GOOD]}, "jobs[1].name 'test' is used twice"),
        ({"jobs": [{"name": "a", "script": "pytest"}]}, "jobs[0].script must be a non-empty list"),
        ({"jobs": [{"name": "a", "script": []}]}, "jobs[0].script must be a non-empty list"),
        (
            {"jobs": [{**GOOD, "tags": ["tpu"]}]},
            "jobs[0].tags: unknown ['tpu']; known: ['gpu', 'hpc']",
        ),
        ({"jobs": [{**GOOD, "tags": "gpu"}]}, "jobs[0].tags must be a list of names"),
        ({"jobs": [{**GOOD, "image": "r:5000/x:1"}]}, "jobs[0].image is for jobs tagged hpc"),
        ({"jobs": [{**GOOD, "colour": "x"}]}, "jobs[0]: unknown key(s) ['colour']"),
    ],
)
def test_each_mistake_is_named(document: Any, message: str) -> None:
    with pytest.raises(pipeline_file.PipelineFileError) as error:
        pipeline_file.parse(document)
    assert f"{pipeline_file.FILE_NAME}: {message}" in str(error.value)


def test_a_gpu_job_needs_a_gpu() -> None:
    document = {"jobs": [{**GOOD, "tags": ["gpu"]}]}
    assert pipeline_file.parse(document)[0].gpu
    with pytest.raises(pipeline_file.PipelineFileError, match="needs a GPU"):
        pipeline_file.parse(document, gpu_available=False)


def test_the_kubernetes_generator_refuses_a_malformed_file_with_the_same_words(
    tmp_path: Any,
) -> None:
    from testbeds.targets.kubernetes.program.workflow import workflow_template

    broken = tmp_path / pipeline_file.FILE_NAME
    broken.write_text(yaml.safe_dump({"jobs": [{"name": "a", "script": "pytest"}]}))
    with pytest.raises(pipeline_file.PipelineFileError, match=r"jobs\[0\]\.script must be"):
        workflow_template(None, broken)  # type: ignore[arg-type]  # fails before the scope is used


HPC_JOB = {**GOOD, "tags": ["hpc", "gpu"], "image": "$CI_REGISTRY/$CI_PROJECT/a:$CI_COMMIT_SHA"}


def test_an_hpc_job_needs_a_gateway_and_an_image() -> None:
    """Where no Slurm gateway is (the pipelines testbed alone, Kubernetes) an HPC job is
    refused before anything runs; a GPU-tagged HPC job asks the cluster for the GPU, not a
    GPU worker."""
    job = pipeline_file.parse({"jobs": [HPC_JOB]}, gpu_available=False, hpc_available=True)[0]
    assert job.hpc and job.gpu and job.image == HPC_JOB["image"]
    with pytest.raises(pipeline_file.PipelineFileError, match="has no HPC gateway"):
        pipeline_file.parse({"jobs": [HPC_JOB]})
    for image in (None, "", "registry/name", "r/x:1; rm -rf /", "r/x:$(id)"):
        with pytest.raises(pipeline_file.PipelineFileError, match=r"jobs\[0\]\.image must be an"):
            pipeline_file.parse({"jobs": [{**HPC_JOB, "image": image}]}, hpc_available=True)
    for image in ("$CI_REGISTRY/other-project/a:1", "elsewhere:5000/$CI_PROJECT/a:1"):
        with pytest.raises(pipeline_file.PipelineFileError, match="project's own namespace"):
            pipeline_file.parse({"jobs": [{**HPC_JOB, "image": image}]}, hpc_available=True)


def test_every_problem_is_a_line_of_its_own_and_all_are_found() -> None:
    """A job that stops its own checks early (no name, tags not a list) does not hide the
    next job's mistakes; the error says each problem on its own line."""
    document = {
        "jobs": [
            {"script": ["x"]},
            {"name": "b", "script": ["x"], "tags": "gpu"},
            {"name": "c", "script": []},
        ]
    }
    with pytest.raises(pipeline_file.PipelineFileError) as error:
        pipeline_file.parse(document)
    assert error.value.problems == [
        f"{pipeline_file.FILE_NAME}: jobs[0].name must be a non-empty string",
        f"{pipeline_file.FILE_NAME}: jobs[1].tags must be a list of names",
        f"{pipeline_file.FILE_NAME}: jobs[2].script must be a non-empty list of commands",
    ]
    assert str(error.value).splitlines() == error.value.problems


def test_by_default_a_gpu_is_there_and_no_hpc_gateway() -> None:
    """What a reader that says nothing assumes: GPU jobs are fine, HPC jobs are not; a job
    that is not an HPC job has no image."""
    assert pipeline_file.problems({"jobs": [{**GOOD, "tags": ["gpu"]}]}) == []
    assert any("has no HPC gateway" in p for p in pipeline_file.problems({"jobs": [HPC_JOB]}))
    assert pipeline_file.parse({"jobs": [GOOD]})[0].image == ""
