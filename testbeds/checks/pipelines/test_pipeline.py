"""The sample research pipeline, end to end: a push runs it green on the workers (the GPU
job on the GPU worker), it logs a run to MLflow and publishes an image tagged with the
commit; the same commit gives the same metrics; a failing test stops it before anything
is published."""

from __future__ import annotations

import base64
import json
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of

from testbeds.checks.browser import first_shown, shown
from testbeds.checks.pipelines.support import PIPELINE_TIMEOUT_S, REPOSITORY, http_status

JOBS = ["test", "train", "image"]
# MLflow's experiment list: its search box and the next page of its results.
EXPERIMENT_SEARCH = '[data-testid="search-experiment-input"]'
EXPERIMENT_LINK = 'a[href*="#/experiments/"]'
NEXT_PAGE = "//button[normalize-space()='Next']"
MAX_PAGES = 20
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json,"
    "application/vnd.docker.distribution.manifest.v2+json"
)


def test_push_runs_the_pipeline_green(green):
    """A pushed commit runs every job of its pipeline file, in order, all green, in bounded time."""
    pipeline = green.pipeline
    assert pipeline["result"] == "success", json.dumps(pipeline, indent=2)
    assert [job["name"] for job in pipeline["jobs"]] == JOBS
    assert all(job["result"] == "success" for job in pipeline["jobs"]), pipeline["jobs"]
    assert green.seconds < PIPELINE_TIMEOUT_S
    print(f"push to green: {green.seconds} s (pipeline {pipeline['duration_s']} s)")


def test_gpu_job_runs_only_on_the_gpu_worker(green, green_again, testbed):
    """The GPU-tagged job ran on a GPU node; the other jobs on CPU-only workers."""
    gpu_nodes = {n.name for n in testbed.nodes if testbed.traits(n.name)["gpus"] > 0}
    for run in (green, green_again):
        assert run.job("train")["worker"] in gpu_nodes, run.pipeline["jobs"]
        for name in ("test", "image"):
            assert run.job(name)["worker"] not in gpu_nodes, run.pipeline["jobs"]


def test_tracking_server_has_the_run_of_the_commit(green, runs_of, mlflow):
    """MLflow holds the training run tagged with the commit: parameters, metrics, the model
    and the exact package versions, with the GPU kind it ran on."""
    runs = [r for r in runs_of(green.revision) if r["data"]]
    assert runs, f"no MLflow run tagged {green.revision}"
    run = runs[0]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert tags["git_commit"] == green.revision
    assert tags["gpu"] in {"emulated", "hardware"}
    assert {"seed", "epochs", "learning_rate"} <= set(params)
    assert {"rmse_train", "rmse_test"} <= set(metrics)
    run_id = run["info"]["run_id"]
    listing = mlflow(f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=model")
    assert [f["path"] for f in listing.get("files", [])] == ["model/model.json"], listing
    lock = mlflow(f"/get-artifact?path=environment/requirements.lock&run_uuid={run_id}", raw=True)
    assert "mlflow-skinny==" in lock and "numpy==" in lock, lock


def test_registry_lists_the_image_tagged_with_the_commit(green, registry):
    """The image job pushed the model image tagged with the commit hash, labelled with it."""
    status, body = http_status(registry("/v2/research-pipeline/model/tags/list"))
    assert status == 200, body
    assert green.revision in json.loads(body)["tags"]
    status, body = http_status(
        registry(f"/v2/research-pipeline/model/manifests/{green.revision}", accept=MANIFEST_TYPES)
    )
    assert status == 200, body
    config_digest = json.loads(body)["config"]["digest"]
    status, body = http_status(registry(f"/v2/research-pipeline/model/blobs/{config_digest}"))
    labels = json.loads(body)["config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == green.revision


def test_same_commit_twice_gives_the_same_model(green, green_again, runs_of, mlflow):
    """The commit pushed again trains again with identical metrics and package versions."""
    assert green_again.pipeline["result"] == "success", green_again.pipeline
    runs = runs_of(green.revision)
    assert len(runs) >= 2, f"expected two runs of {green.revision}, got {len(runs)}"

    def metrics(run):
        return {m["key"]: m["value"] for m in run["data"]["metrics"]}

    def lock(run):
        path = f"/get-artifact?path=environment/requirements.lock&run_uuid={run['info']['run_id']}"
        return mlflow(path, raw=True)

    assert metrics(runs[0]) == metrics(runs[1])
    assert lock(runs[0]) == lock(runs[1])


def test_failing_test_turns_the_pipeline_red_and_publishes_nothing(red, runs_of, registry):
    """A commit whose tests fail: the test job fails with pytest's output, later jobs never
    run, no MLflow run and no image carry its hash."""
    pipeline = red.pipeline
    assert pipeline["result"] == "failure", pipeline
    assert [job["name"] for job in pipeline["jobs"]] == ["test"], pipeline["jobs"]
    assert "failed" in "\n".join(red.job("test")["output_tail"] or []), red.job("test")
    assert runs_of(red.revision) == []
    status, body = http_status(registry("/v2/research-pipeline/model/tags/list"))
    assert red.revision not in json.loads(body)["tags"]


def test_a_developer_sees_the_commits_run_on_mlflows_pages(
    testbed, green, runs_of, mlflow_base, web_browser, record_property
):
    """In a real browser: a developer who has logged in (their directory account, sent as
    the browser sends HTTP Basic credentials) opens MLflow's pages over HTTPS from the
    testbed CA, finds the pipeline's experiment with the list's search box (paging on while
    it is not shown), and on the page of the run the pushed commit logged sees the commit
    among its tags. (The CI engine has no web page: a pipeline's state is read with
    wp5-pipeline-status on the master's node.)"""
    user = "developer"
    password = (testbed.secrets_dir / f"user-{user}-password").read_text().strip()
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    driver = web_browser.driver
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {basic}"}}
    )
    started = time.monotonic()
    web_browser.open(f"{mlflow_base}/#/experiments")
    # The list shows a page of the newest experiments, and every run of the checks adds
    # some: the developer searches for the pipeline's by name and pages on until it shows.
    search = web_browser.wait(lambda d: first_shown(d, By.CSS_SELECTOR, EXPERIMENT_SEARCH))
    search.send_keys(REPOSITORY, Keys.ENTER)

    def results(d):
        """The list's rows once it shows the search's results only (every name holds it)."""
        rows = shown(d, By.CSS_SELECTOR, EXPERIMENT_LINK)
        return rows if rows and all(REPOSITORY in row.text for row in rows) else None

    listed = None
    for _ in range(MAX_PAGES):
        rows = web_browser.wait(results)
        listed = next((row for row in rows if row.text == REPOSITORY), None)
        following = first_shown(driver, By.XPATH, NEXT_PAGE)
        if listed is not None or following is None or not following.is_enabled():
            break
        following.click()
        web_browser.wait(staleness_of(rows[0]))
    assert listed is not None, f"no experiment {REPOSITORY!r} in MLflow's list"
    web_browser.shot("experiments")
    # The experiment's own page opens on GenAI views: the run's page is where its tags are.
    run = runs_of(green.revision)[0]["info"]
    experiment = listed.get_attribute("href").split("/experiments/", 1)[1].split("/", 1)[0]
    assert experiment == run["experiment_id"], (experiment, run)
    web_browser.open(f"{mlflow_base}/#/experiments/{experiment}/runs/{run['run_id']}")
    web_browser.wait(lambda d: green.revision in d.find_element(By.TAG_NAME, "body").text)
    web_browser.shot("run")
    record_property(
        "browser_mlflow", f"list to the commit's run {time.monotonic() - started:.1f} s"
    )
