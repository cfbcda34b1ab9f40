"""The pipeline file (`.wp5-pipeline.yml`) a repository carries: its jobs, in order.

One schema for every reader: the Buildbot master on the local, static and OpenStack
targets (this file is copied next to its configuration and imported there, so it needs
only the standard library), the Kubernetes program's WorkflowTemplate generator, and the
tests. A malformed file gives the same messages everywhere, each naming the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FILE_NAME = ".wp5-pipeline.yml"
# Tags a job may carry: `gpu` runs it only where a GPU is (a GPU worker, a GPU node); `hpc`
# runs it on the cluster as a Slurm job, in its `image` (with a GPU node's GPU if `gpu` too).
KNOWN_TAGS = frozenset({"gpu", "hpc"})
# An image reference, where $CI_REGISTRY, $CI_PROJECT and $CI_COMMIT_SHA are filled in when
# the job runs: registry/name:tag, nothing a shell would read.
IMAGE_PATTERN = re.compile(r"^[A-Za-z0-9$_{}.:/-]+:[A-Za-z0-9$_{}.-]+$")
# An HPC job runs only images of its own project's namespace at the testbed's registry,
# which only the project's members and its own jobs write to.
PROJECT_NAMESPACE = "$CI_REGISTRY/$CI_PROJECT/"


@dataclass(frozen=True)
class Job:
    name: str
    script: tuple[str, ...]
    tags: frozenset[str] = frozenset()
    image: str = ""

    @property
    def gpu(self) -> bool:
        return "gpu" in self.tags

    @property
    def hpc(self) -> bool:
        return "hpc" in self.tags


class PipelineFileError(ValueError):
    """The file is not a pipeline; `problems` name each field at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def problems(document: Any, gpu_available: bool = True, hpc_available: bool = False) -> list[str]:
    """What is wrong with a parsed pipeline file, one message per field (empty: valid)."""
    jobs = document.get("jobs") if isinstance(document, dict) else None
    if not isinstance(jobs, list) or not jobs:
        return [f"{FILE_NAME}: 'jobs' must be a non-empty list"]
    found = []
    if isinstance(document, dict) and set(document) - {"jobs"}:
        found.append(f"{FILE_NAME}: unknown key(s) {sorted(map(str, set(document) - {'jobs'}))}")
    names: set[str] = set()
    for index, job in enumerate(jobs):
        where = f"{FILE_NAME}: jobs[{index}]"
        if not isinstance(job, dict) or not isinstance(job.get("name"), str) or not job["name"]:
            found.append(f"{where}.name must be a non-empty string")
            continue
        if job["name"] in names:
            found.append(f"{where}.name {job['name']!r} is used twice")
        names.add(job["name"])
        unknown_keys = set(job) - {"name", "script", "tags", "image"}
        if unknown_keys:
            found.append(f"{where}: unknown key(s) {sorted(map(str, unknown_keys))}")
        script = job.get("script")
        if (
            not isinstance(script, list)
            or not script
            or not all(isinstance(s, str) for s in script)
        ):
            found.append(f"{where}.script must be a non-empty list of commands")
        tags = job.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            found.append(f"{where}.tags must be a list of names")
            continue
        unknown_tags = sorted(set(tags) - KNOWN_TAGS)
        if unknown_tags:
            found.append(f"{where}.tags: unknown {unknown_tags}; known: {sorted(KNOWN_TAGS)}")
        if "hpc" in tags:
            found.extend(hpc_problems(where, job.get("image"), hpc_available))
        elif "image" in job:
            found.append(f"{where}.image is for jobs tagged hpc (the CI workers run no images)")
        elif "gpu" in tags and not gpu_available:
            found.append(f"{where} needs a GPU and this testbed has none")
    return found


def hpc_problems(where: str, image: Any, hpc_available: bool) -> list[str]:
    found = []
    if not hpc_available:
        found.append(f"{where} runs on HPC and this testbed has no HPC gateway")
    if not isinstance(image, str) or not IMAGE_PATTERN.match(image):
        found.append(f"{where}.image must be an image reference (registry/name:tag)")
    elif not image.startswith(PROJECT_NAMESPACE):
        found.append(
            f"{where}.image must be in the project's own namespace ({PROJECT_NAMESPACE}...)"
        )
    return found


def parse(document: Any, gpu_available: bool = True, hpc_available: bool = False) -> list[Job]:
    """The jobs of a parsed pipeline file, or PipelineFileError naming every problem."""
    found = problems(document, gpu_available, hpc_available)
    if found:
        raise PipelineFileError(found)
    return [
        Job(
            job["name"],
            tuple(job["script"]),
            frozenset(job.get("tags", [])),
            job.get("image", ""),
        )
        for job in document["jobs"]
    ]


def regular_file_blob(listing: str) -> str:
    """The pipeline file's blob from `git ls-tree HEAD -- FILE`, when it is a regular file:
    a commit that makes it a link (to the master's secrets, say) is refused, not followed."""
    fields = listing.split(maxsplit=3)
    if not fields:
        raise PipelineFileError([f"the commit has no {FILE_NAME}"])
    if len(fields) != 4 or fields[0] not in ("100644", "100755") or fields[1] != "blob":
        raise PipelineFileError([f"{FILE_NAME} is not a regular file (mode {fields[0]})"])
    return fields[2]
