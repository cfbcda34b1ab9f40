"""Interactive analysis: JupyterHub on the login node starts each notebook as a Slurm job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for

HUB_SCRIPT = Path(__file__).with_name("hub_session.py")


@pytest.fixture(scope="module")
def hub(testbed):
    return testbed.host(testbed.group("jupyterhub")[0])


@pytest.fixture(scope="module")
def hub_session(testbed, hub):
    """Copy the session script and the user's password to the hub node (mode 0600), then
    run it; the password never appears on a command line or in output."""
    password = testbed.secrets_dir / f"user-{testbed.research_user}-password"
    workdir = hub.check_output("mktemp -d")
    for name, content in (
        ("hub_session.py", HUB_SCRIPT.read_text()),
        ("password", password.read_text()),
    ):
        hub.run(f"umask 077 && cat > {workdir}/{name} <<'EOF'\n{content}\nEOF")

    def run(action: str, timeout: int = 240) -> dict:
        out = hub.run(
            f"/usr/bin/python3 {workdir}/hub_session.py {testbed.value('jupyterhub_port')} "
            f"{testbed.value('testbed_ca_file')} {testbed.research_user} {workdir}/password "
            f"{action} {timeout}"
        )
        assert out.rc == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    yield run
    hub.run(f"rm -rf {workdir}")


def spawner_jobs(testbed, hub) -> list[str]:
    out = hub.run(f"squeue -h -u {testbed.research_user} -n spawner-jupyterhub -o '%i %T %N'")
    return out.stdout.strip().splitlines()


def test_hub_running(hub):
    """The hub service is active and enabled."""
    assert_service_running(hub, "jupyterhub")


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


def test_notebook_runs_as_slurm_job_and_stops(testbed, hub, hub_session):
    """Logged in as the research user, starting a server submits a Slurm job that runs on a
    compute node; stopping the server ends the job."""
    started = hub_session("start")
    assert started["step"] == "start", started
    assert started["server"].get("ready"), started
    jobs = spawner_jobs(testbed, hub)
    assert len(jobs) == 1, jobs
    job_id, state, node = jobs[0].split()
    assert state == "RUNNING"
    assert node in testbed.group("slurm_compute")
    stopped = hub_session("stop")
    assert stopped["server"] == {}, stopped
    assert wait_for(lambda: not spawner_jobs(testbed, hub), timeout=60), spawner_jobs(testbed, hub)
    final = hub.check_output(f"sacct -n -X -j {job_id} -o State%30").split()
    assert final and final[0] in {"CANCELLED", "COMPLETED"}, final
