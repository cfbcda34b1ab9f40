"""The centre's scenario, end to end, each link checked and timed: a dataset registered at
a grid site; a Rucio rule replicates it to the HPC site (the cluster's shared filesystem);
a commit to the analysis repository names it, builds the analysis image and pushes it; the
pipeline's HPC job runs that image over the replicas, by the paths Rucio gave, on the GPU
node; the run is in MLflow with the commit, the image digest, the Slurm job's id and the
dataset's identifier; the job's result goes back into Rucio under the project's scope,
with tokens the master minted for that job alone, and a rule of the project's account
copies it to a grid site, its checksum verified there."""

from __future__ import annotations

import re
import shlex
import time
import uuid
import zlib
from urllib.parse import urlparse

import pytest
import yaml

from testbeds.checks.composition.test_pipelines_to_hpc import (
    ANALYSIS,
    analysis_pipeline,
    slurm_job_id,
)
from testbeds.checks.data_management.test_rucio import rse_name
from testbeds.checks.helpers import endpoint_adler32, wait_for
from testbeds.checks.storage_tokens import READ_SCOPES as READ
from testbeds.checks.storage_tokens import WRITE_SCOPES as WRITE

FILES = 3
FILE_BYTES = 64 * 1024 + 3
REPLICATION_TIMEOUT_S = 180
# The project of the analysis repository (the definition's git_server_repositories).
PROJECT = "research"
# What the job's script says of the datalake tokens in its own environment (none reach it).
TOKENS_IN_JOB = "datalake tokens in the job: "
RESULT_LINE = re.compile(
    r"datalake: (?P<did>\S+:\S+) (?P<bytes>\d+) bytes "
    r"adler32 (?P<adler32>[0-9a-f]{8}) at (?P<rse>\S+)"
)
RULE_LINE = re.compile(r"datalake: rule (?P<rule>[0-9a-f]{32}) copies them to (?P<to>\S+)")


def result_back(output: list[str]) -> dict[str, str]:
    """The one result and rule wp5-hpc-job reported in the HPC job's output, or nothing."""
    results = [m.groupdict() for line in output if (m := RESULT_LINE.search(line))]
    rules = [m.groupdict() for line in output if (m := RULE_LINE.search(line))]
    return {**results[0], **rules[0]} if len(results) == len(rules) == 1 else {}


@pytest.fixture(scope="module")
def scenario(testbed, rucio, tokens, push, mlflow):
    """Every step in order; each step's seconds, and what it gave the next."""
    steps: dict[str, float] = {}
    started = time.monotonic()

    def step(name: str) -> None:
        steps[name] = round(time.monotonic() - started - sum(steps.values()), 1)

    hpc_nodes = set(testbed.group("hpc"))
    grid = [node for node in testbed.group("xrootd") if node not in hpc_nodes][0]
    dataset = rucio(
        "dataset",
        "testbed",
        f"scenario-{uuid.uuid4().hex[:8]}",
        rse_name(grid),
        FILES,
        FILE_BYTES,
        token_file=tokens.get(grid, WRITE).token,
    )
    step("dataset registered at a grid site")

    hpc = rse_name(testbed.group("hpc")[0])
    rule = rucio("rule-add", dataset["did"], 1, hpc)["rule"]
    replicated = wait_for(
        lambda: rucio("rule", rule)["state"] == "OK", timeout=REPLICATION_TIMEOUT_S, interval=2
    )
    step("rule to the HPC site OK")
    replicas = rucio("paths", dataset["did"], hpc) if replicated else {}

    listing = f"# dataset: {dataset['did']}\n" + "".join(
        f"{urlparse(entry['pfn']).path}\n" for entry in replicas.values()
    )
    script = ["checksums inputs.txt", f'echo "{TOKENS_IN_JOB}${{WP5_DATALAKE_TOKENS:+present}}"']
    pipeline = yaml.safe_dump(analysis_pipeline(script))
    change = (
        f"printf '%s' {shlex.quote(listing)} > inputs.txt && "
        f"printf '%s' {shlex.quote(pipeline)} > .wp5-pipeline.yml && git add inputs.txt"
    )
    pushed = push("scenario", change=change, repository=ANALYSIS)
    step("commit pushed until its pipeline finished (image built, HPC job run)")

    experiment = mlflow(f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={ANALYSIS}")
    runs = mlflow(
        "/api/2.0/mlflow/runs/search",
        {
            "experiment_ids": [experiment["experiment"]["experiment_id"]],
            "filter": f"tags.git_commit = '{pushed.revision}'",
        },
    ).get("runs", [])
    step("run found in MLflow")

    back: dict[str, str] = {}
    copied = False
    if pushed.pipeline["result"] == "success":
        back = result_back(pushed.job("analyse")["output_tail"])
    if back:
        copied = wait_for(
            lambda: rucio("rule", back["rule"])["state"] == "OK",
            timeout=REPLICATION_TIMEOUT_S,
            interval=2,
        )
    step("result at a grid site")
    return {
        "back": back,
        "copied": copied,
        "grid_sites": [node for node in testbed.group("xrootd") if node not in hpc_nodes],
        "dataset": dataset,
        "replicated": replicated,
        "replicas": replicas,
        "pushed": pushed,
        "runs": runs,
        "steps": steps,
    }


def test_scenario_dataset_reaches_the_hpc_site(scenario):
    assert scenario["replicated"], scenario["dataset"]
    assert len(scenario["replicas"]) == FILES


def test_scenario_hpc_job_reads_every_replica_in_the_pushed_image_on_the_gpu_node(scenario):
    """The job ran green on the GPU node, and read each file by the path Rucio gave, with
    the size and md5 Rucio holds for it."""
    pushed = scenario["pushed"]
    assert pushed.pipeline["result"] == "success", pushed.pipeline
    assert [(j["name"], j["worker"]) for j in pushed.pipeline["jobs"]] == [
        ("image", "worker"),
        ("analyse", "gateway"),
    ]
    output = pushed.job("analyse")["output_tail"]
    assert f"checksums: on gpu, dataset {scenario['dataset']['did']}" in output, output
    expected = {
        f"{urlparse(e['pfn']).path} {e['bytes']} {e['md5']}" for e in scenario["replicas"].values()
    }
    assert expected <= set(output), output


def test_scenario_run_is_in_mlflow_with_commit_image_job_and_dataset(scenario, record_property):
    pushed = scenario["pushed"]
    assert len(scenario["runs"]) == 1, scenario["runs"]
    run = scenario["runs"][0]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    output = pushed.job("analyse")["output_tail"]
    digest = next(m[1] for line in output if (m := re.search(r" is (sha256:[0-9a-f]{64})", line)))
    assert run["info"]["status"] == "FINISHED"
    assert tags["git_commit"] == pushed.revision
    assert tags["image"].endswith(f"/{ANALYSIS}/analysis@{digest}")
    assert tags["slurm.job_id"] == slurm_job_id(output)
    assert tags["slurm.node"] == "gpu"
    assert tags["dataset"] == scenario["dataset"]["did"]
    assert tags["files"] == str(FILES)
    record_property(
        "scenario_steps",
        "; ".join(f"{name}: {seconds} s" for name, seconds in scenario["steps"].items()),
    )


def test_scenario_result_goes_back_into_rucio_under_the_projects_scope(scenario, rucio):
    """The gateway registered the job's result (its table of sizes and md5s) at the HPC
    site's users' area under the project's scope, and the rule copying it on is the
    project's account's: what the tokens the master minted for the job act as."""
    back = scenario["back"]
    assert back, scenario["pushed"].pipeline  # one result and one rule in the job's output
    assert back["did"].startswith(f"project.{PROJECT}:"), back
    assert back["rse"].endswith("_USERDISK"), back
    rule = rucio("rule", back["rule"])
    assert (rule["account"], rule["scope"]) == (f"pipeline-{PROJECT}", f"project.{PROJECT}"), rule
    # The job's own script never saw the tokens: they stay with the gateway.
    output = scenario["pushed"].job("analyse")["output_tail"]
    assert TOKENS_IN_JOB in output, output
    assert not any(line.startswith(TOKENS_IN_JOB) and line != TOKENS_IN_JOB for line in output)


def test_scenario_result_reaches_a_grid_site_with_its_checksum(
    scenario, rucio, client, tokens, record_property
):
    """The project's rule reaches OK at the grid site; the copy's adler32, as that endpoint
    computes it, is that of the table the job wrote: the listing's dataset and, per
    replica, its path, size and md5 as Rucio holds them."""
    back = scenario["back"]
    assert back, scenario["pushed"].pipeline
    assert scenario["copied"], rucio("rule", back["rule"])
    dataset = scenario["dataset"]["did"]
    table = f"# dataset: {dataset}\n" + "".join(
        f"{urlparse(e['pfn']).path} {e['bytes']} {e['md5']}\n"
        for e in scenario["replicas"].values()
    )
    expected = f"{zlib.adler32(table.encode()):08x}"
    assert (back["adler32"], int(back["bytes"])) == (expected, len(table.encode())), back
    site = {rse_name(node): node for node in scenario["grid_sites"]}.get(back["to"])
    assert site is not None, f"{back['to']} is not a grid site's RSE"
    did = back["did"]
    entry = rucio("replicas", did)[did.split(":", 1)[1]]
    token = tokens.get(site, READ).token
    assert endpoint_adler32(client, entry["replicas"][back["to"]], token) == expected
    record_property(
        "scenario_result_back",
        f"{did} at {back['to']} {scenario['steps']['result at a grid site']} s after the pipeline",
    )
