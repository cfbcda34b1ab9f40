"""Interactive analysis: JupyterHub on the login node starts each notebook as a Slurm job, and
from a notebook the user runs a Dask cluster whose workers are Slurm jobs too."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from testbeds.checks.helpers import (
    HubSessions,
    assert_service_running,
    printed_result,
    wait_for,
)
from testbeds.checks.issuer_pages import grant_and_continue, log_in

DASK_CELL = Path(__file__).with_name("dask_notebook.py")
DASK_WORKERS = 2
# How long the workers' jobs may queue and start: the partition is shared with the other
# lanes' jobs (Spark, MPI, job arrays), which may hold every CPU for minutes (the workers'
# short walltime lets backfill start them beside a job that waits for whole nodes).
DASK_WORKERS_WAIT_S = 480


@pytest.fixture(scope="module")
def hub(testbed):
    return testbed.host(testbed.group("jupyterhub")[0])


@pytest.fixture(scope="module")
def hub_session(testbed, hub):
    """Run hub_session.py on the hub's node as the research user; the password goes to a
    0600 file there, never on a command line or in output."""
    password = (testbed.secrets_dir / f"user-{testbed.research_user}-password").read_text()
    sessions = HubSessions.for_testbed(testbed)

    def run(action: str, timeout: int = 240, kernel: str = "", code: str = "") -> dict:
        return sessions.run(testbed.research_user, password, action, timeout, kernel, code)

    yield run
    sessions.close()


def spawner_jobs(testbed, hub) -> list[str]:
    out = hub.run(f"squeue -h -u {testbed.research_user} -n spawner-jupyterhub -o '%i %T %N'")
    return out.stdout.strip().splitlines()


def test_hub_running(hub):
    """The hub service is active and enabled."""
    assert_service_running(hub, "jupyterhub")


@pytest.mark.nodes("jupyterhub_singleuser")
def test_only_the_hubs_node_runs_a_hub(testbed, host, node):
    """Debian's jupyterhub package starts a stock hub (PAM logins over plain HTTP on port
    8000) wherever it is installed: the hub's node runs the jupyterhub role's hub instead,
    and nodes that only run notebooks run none and listen on neither hub port."""
    unit = host.run("systemctl cat jupyterhub").stdout
    if node in testbed.group("jupyterhub"):
        assert "-f /etc/jupyterhub/jupyterhub_config.py" in unit, unit
        return
    service = host.service("jupyterhub")
    assert not service.is_running and not service.is_enabled, unit
    for port in (8000, 8081):
        assert not host.socket(f"tcp://{port}").is_listening, f"{node} listens on {port}"


def test_hub_answers_only_over_https_from_the_testbed_ca(testbed, hub):
    """The hub's public port speaks HTTPS with a certificate the testbed CA signed for the
    hub's name; plain HTTP gets no login page."""
    name = testbed.group("jupyterhub")[0]
    port, ca_file = testbed.value("jupyterhub_port"), testbed.value("testbed_ca_file")
    secure = hub.run(
        f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca_file} "
        f"https://{name}:{port}/hub/login"
    )
    assert secure.stdout.strip() == "200", secure.stdout + secure.stderr
    plain = hub.run(f"curl -sS --max-time 10 http://{name}:{port}/hub/login")
    assert "<form" not in plain.stdout, "the login page is served over plain HTTP"


def test_users_log_in_at_the_token_issuer(testbed, hub_session):
    """Where the testbed has a token issuer, the hub sends users there (OAuth authorization
    code flow): the research user logs in at the issuer with the directory password and the
    hub's own password form lets nobody in. Without an issuer, the hub's form (PAM) does."""
    with_issuer = bool(testbed.group("token_issuer"))
    logged_in = hub_session("login", 60)
    assert logged_in == {
        "step": "login",
        "status": 302,
        "via": "issuer" if with_issuer else "password form",
    }, logged_in
    if with_issuer:
        form = hub_session("form-login", 60)
        assert form["status"] != 302, form


@pytest.fixture(scope="module")
def notebook(testbed, hub, hub_session):
    """The research user's server, started once through the hub for this module's checks and
    stopped afterwards (a notebook job left running would hold a CPU others count on)."""
    started = hub_session("start")
    yield started
    if spawner_jobs(testbed, hub):
        hub_session("stop")


def test_notebook_runs_as_slurm_job(testbed, hub, notebook):
    """Logged in as the research user, starting a server submits a Slurm job that runs on a
    compute node."""
    assert notebook["step"] == "start", notebook
    assert notebook["server"].get("ready"), notebook
    jobs = spawner_jobs(testbed, hub)
    assert len(jobs) == 1, jobs
    _, state, node = jobs[0].split()
    assert state == "RUNNING"
    assert node in testbed.group("slurm_compute")


def test_hub_api_and_notebook_answer_only_mutual_tls(testbed, hub, notebook):
    """Between nodes, the hub's API and the research user's notebook server answer only TLS
    with a client certificate of the hub's own CAs: from the notebook's node, plain HTTP and
    TLS without a certificate get no answer; with the proxy's certificate, from the hub's
    node, both answer over a verified connection."""
    assert notebook["server"].get("ready"), notebook
    hub_name = testbed.group("jupyterhub")[0]
    job, _, node_name = spawner_jobs(testbed, hub)[0].split()
    node = testbed.host(node_name)
    # The server says where it listens in its job's log (other sockets of the job, such as
    # srun's, are not the notebook's).
    log = hub.run(
        f"su - {testbed.research_user} -c 'cat ~/jupyterhub_slurmspawner_{job}.log'"
    ).stdout
    found = re.search(rf"https://{re.escape(node_name)}:(\d+)/", log)
    assert found, f"the notebook's log names no https address on {node_name}: {log[-1500:]}"
    ports = [found.group(1)]
    endpoints = [f"{hub_name}:{testbed.value('jupyterhub_hub_port')}"]
    endpoints += [f"{node_name}:{port}" for port in ports]
    internal = f"{testbed.value('jupyterhub_state_dir')}/internal-ssl"
    proxy_cert = (
        f"--cert {internal}/proxy-client/proxy-client.crt "
        f"--key {internal}/proxy-client/proxy-client.key "
        f"--cacert {internal}/proxy-client-ca_trust.crt"
    )
    status = "curl -sS --max-time 10 -o /dev/null -w '%{http_code}'"
    for endpoint in endpoints:
        for url, options in ((f"http://{endpoint}/", ""), (f"https://{endpoint}/", "-k")):
            refused = node.run(f"{status} {options} {url}")
            assert refused.stdout.strip() == "000", (url, options, refused.stdout)
        answered = hub.run(f"{status} {proxy_cert} https://{endpoint}/")
        assert answered.stdout.strip() not in ("", "000"), (endpoint, answered.stderr)


def test_a_user_logs_in_through_the_issuers_page_to_a_running_notebook(
    testbed, notebook, web_browser, record_property
):
    """In a real browser (headless chromium on the testbed's network): the hub's login
    button leads to the issuer's page, which loads (its scripts and styles are served); the
    research user logs in there with the directory password, grants the hub what it asks
    the first time, continues, and lands on their own running notebook server's page."""
    hub_name = testbed.group("jupyterhub")[0]
    user = testbed.research_user
    password = (testbed.secrets_dir / f"user-{user}-password").read_text().strip()
    started = time.monotonic()
    web_browser.open(f"https://{hub_name}:{testbed.value('jupyterhub_port')}/hub/login")
    sign_in = web_browser.wait(
        lambda driver: driver.find_element(By.CSS_SELECTOR, "a[href*='oauth_login']")
    )
    web_browser.shot("hub-login")
    sign_in.click()
    log_in(web_browser, user, password)
    grant_and_continue(web_browser)
    web_browser.wait(lambda driver: f"/user/{user}/" in driver.current_url, timeout=180)
    web_browser.wait(lambda driver: driver.find_elements(By.ID, "notebook_list"))
    web_browser.shot("notebook")
    assert f"{hub_name}:" in web_browser.driver.current_url, web_browser.driver.current_url
    record_property(
        "browser_hub_login", f"login page to notebook {time.monotonic() - started:.1f} s"
    )


def test_dask_cluster_from_notebook(testbed, hub, hub_session, notebook, record_property):
    """In the notebook's analysis kernel, SLURMCluster(security=True) starts two Dask workers
    as Slurm jobs on compute nodes; they compute per-key sums and counts over the sample
    dataset on /shared, which is several times larger than a worker's memory limit, exactly
    as the dataset's generator counted them; the scheduler refuses plaintext and other keys;
    closing the cluster ends the jobs."""
    assert notebook["server"].get("ready"), notebook
    dataset = testbed.value("analysis_sample_dataset_dir")
    expected = json.loads(hub.check_output(f"cat {dataset}/_expected.json"))
    cell = (
        DASK_CELL.read_text()
        .replace("__DATASET__", dataset)
        .replace("__WORKERS__", str(DASK_WORKERS))
        .replace("__WORKERS_WAIT_S__", str(DASK_WORKERS_WAIT_S))
    )
    ran = hub_session("run", DASK_WORKERS_WAIT_S + 180, testbed.value("analysis_kernel_name"), cell)
    assert ran.get("status") == "ok", ran
    result = printed_result(ran["stdout"])
    assert result is not None, ran
    assert result["scheduler"].startswith("tls://"), result["scheduler"]
    assert result["plain_tcp_refused"] and result["other_keys_refused"], result
    assert result["per_key"] == expected["per_key"]
    assert expected["bytes_in_memory"] >= 3 * result["worker_memory_limit"], (
        expected["bytes_in_memory"],
        result["worker_memory_limit"],
    )
    assert len(result["jobs"]) == DASK_WORKERS, result["jobs"]
    job_list = ",".join(result["jobs"])
    assert wait_for(
        lambda: not hub.run(f"squeue -h -j {job_list} -o %i").stdout.strip(),
        timeout=60,
    ), f"Dask worker jobs {job_list} still queued or running after the cluster closed"

    def accounted() -> list[tuple[str, str]]:
        out = hub.check_output(f"sacct -n -X -P -j {job_list} -o NodeList,State")
        return [
            (node, state.split()[0]) for node, state in (x.split("|") for x in out.splitlines())
        ]

    # Accounting records the jobs' ends a moment after slurmctld forgets them.
    assert wait_for(
        lambda: all(state in {"CANCELLED", "COMPLETED"} for _, state in accounted()), timeout=30
    ), accounted()
    ran_on = accounted()
    assert len(ran_on) == DASK_WORKERS, ran_on
    assert {node for node, _ in ran_on} <= set(testbed.group("slurm_compute")), ran_on
    outputs = " ".join(f"slurm-{job}.out" for job in result["jobs"])
    hub.run(f"su - {testbed.research_user} -c 'rm -f {outputs}'")
    record_property(
        "dask_aggregate",
        f"{expected['rows']:,} rows ({expected['bytes_in_memory'] / 2**30:.1f} GiB in memory, "
        f"{result['worker_memory_limit'] / 2**20:.0f} MiB per worker) in {result['compute_s']} s "
        f"on {DASK_WORKERS} Slurm-job workers (started in {result['started_s']} s)",
    )


REDIS_CELL = """
import getpass, json, os, redis
user = getpass.getuser()
client = redis.Redis(
    host=os.environ["REDIS_HOST"], port=int(os.environ["REDIS_PORT"]), ssl=True,
    ssl_ca_certs=os.environ["REDIS_CA_FILE"], username=user,
    password=open(os.environ["REDIS_PASSWORD_FILE"]).read().strip(),
)
key = user + ":from-notebook"
client.set(key, "__VALUE__")
value = client.get(key).decode()
client.delete(key)
try:
    client.set("someone-else:from-notebook", "x")
    foreign = "written"
except redis.exceptions.NoPermissionError:
    foreign = "refused"
print("RESULT " + json.dumps({"value": value, "foreign": foreign}))
"""


def test_redis_from_the_notebook(testbed, notebook, hub_session):
    """In the notebook's analysis kernel, the research user reaches the testbed's Redis with
    redis-py as the docs show (address, port, CA file and password file from the
    environment a login shell has; TLS verified; their own ACL user): writes and reads back a
    key under their prefix, and is refused a key outside it."""
    if not testbed.group("redis"):
        pytest.skip("this testbed has no Redis")
    assert notebook["server"].get("ready"), notebook
    value = f"check-{time.monotonic_ns()}"
    cell = REDIS_CELL.replace("__VALUE__", value)
    ran = hub_session("run", 120, testbed.value("analysis_kernel_name"), cell)
    assert ran.get("status") == "ok", ran
    result = printed_result(ran["stdout"])
    assert result is not None, ran
    assert result == {"value": value, "foreign": "refused"}


def test_notebook_stops_and_its_job_ends(testbed, hub, hub_session, notebook):
    """Stopping the server ends its Slurm job."""
    jobs = spawner_jobs(testbed, hub)
    assert len(jobs) == 1, jobs
    job_id = jobs[0].split()[0]
    stopped = hub_session("stop")
    assert stopped["server"] == {}, stopped
    assert wait_for(lambda: not spawner_jobs(testbed, hub), timeout=60), spawner_jobs(testbed, hub)

    def final() -> list[str]:
        return hub.check_output(f"sacct -n -X -j {job_id} -o State%30").split()

    assert wait_for(lambda: final()[:1] in (["CANCELLED"], ["COMPLETED"]), timeout=30), final()
