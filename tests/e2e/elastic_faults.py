"""Elastic nodes on a live instance with an elastic group (hpc-access's `elastic`): status
shows them with their Slurm state and `up` never starts them; only Slurm on the controller
reaches the node broker, and only for those nodes; a start that fails and a node that
disappears both leave the node DOWN with the reason and requeue the job, and the cluster
recovers. The class that brings the instance up mixes them in
(tests/e2e/test_local_research_infrastructure.py); its `down` then removes a node Slurm
started."""

from __future__ import annotations

import json
from typing import ClassVar

import psutil

from testbeds.checks.helpers import wait_for
from testbeds.model.plan import resolve
from testbeds.slurm_states import SlurmNodeState, parse_sinfo, sinfo_arguments
from testbeds.targets.local import podman
from testbeds.targets.local.baked import baked_image_ref
from testbeds.targets.local.target import base_image
from tests.e2e.live import LiveTestbed, run_cli

GROUP = "elastic"
NODES = [f"{GROUP}{i}" for i in range(1, 5)]
USER = "researcher"


class ElasticFaults:
    instance: ClassVar[str]
    testbed: ClassVar[str]

    def slurm(self, *command: str) -> str:
        proc = podman.exec_(f"{self.instance}-controller", *command, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def states(self) -> dict[str, SlurmNodeState]:
        return parse_sinfo(self.slurm("sinfo", *sinfo_arguments(NODES)))

    def running_elastic(self) -> list[str]:
        return sorted(
            (c.get("Labels") or {}).get("wp5-testbeds.node", "")
            for c in podman.containers("wp5-testbeds.elastic=true")
            if (c.get("Labels") or {}).get(podman.INSTANCE_LABEL) == self.instance
        )

    def all_powered_down(self) -> bool:
        states = self.states()
        return all(n in states and states[n].powered_down for n in NODES) and not (
            self.running_elastic()
        )

    def submit(self, *options: str) -> str:
        proc = podman.exec_(
            f"{self.instance}-login", "su", "-", USER, "-c",
            f"sbatch --parsable -p {GROUP} -N1 --exclusive -o /dev/null {' '.join(options)}",
            timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> str:
        return self.slurm("scontrol", "show", "job", "-o", job_id)

    def test_status_lists_elastic_nodes_and_up_starts_none(self, live: LiveTestbed) -> None:
        """Once the checks' nodes are gone, `status` lists every elastic node with its Slurm
        state (powered down) and the instance is up; an `up` starts none of them."""
        assert wait_for(self.all_powered_down, timeout=180, interval=3), self.states()
        for measured in live.first_up["verify"]["measurements"]:
            if measured["name"].startswith("elastic"):
                print(f"measured in the first verify: {measured['name']} = {measured['value']}")
        status = json.loads(run_cli("status", self.instance, "--json").stdout)
        elastic = {n["name"]: n for n in status["nodes"] if n["elastic"]}
        assert sorted(elastic) == NODES, status["nodes"]
        assert all("Slurm: idle~" in n["detail"] for n in elastic.values()), elastic
        assert status["up"] is True
        run_cli("up", self.testbed, "--instance", self.instance, "--no-verify")
        assert self.running_elastic() == []

    def test_only_slurm_reaches_the_broker_and_only_for_elastic_nodes(
        self, live: LiveTestbed
    ) -> None:
        """The controller holds the broker's socket and nothing else of the host (no podman
        socket); root there is refused, and SlurmUser asking for any other node (or any
        other shape of request) is refused; nothing is started."""
        controller = f"{self.instance}-controller"
        assert self.slurm("ls", "-A", "/run/testbed-elastic").split() == ["broker.sock"]
        for socket_path in ("/run/podman/podman.sock", "/var/run/docker.sock"):
            assert podman.exec_(controller, "test", "-e", socket_path).returncode == 1
        ask = (
            "import json, socket, sys; s = socket.socket(socket.AF_UNIX); "
            "s.connect('/run/testbed-elastic/broker.sock'); "
            "s.sendall(sys.argv[1].encode() + b'\\n'); "
            "print(s.makefile().readline().strip())"
        )

        def reply(user: str, request: object) -> dict[str, object]:
            proc = podman.run(
                "exec", "--user", user, controller, "python3", "-c", ask, json.dumps(request)
            )
            return dict(json.loads(proc.stdout))

        root = reply("root", {"action": "resume", "nodes": ["elastic1"]})
        assert root == {
            "accepted": False,
            "message": "refused: only the Slurm controller's SlurmUser may ask",
        }
        for request in (
            {"action": "resume", "nodes": ["controller"]},
            {"action": "suspend", "nodes": ["login"]},
            {"action": "resume", "nodes": ["elastic9"]},
            {"action": "exec", "nodes": ["elastic1"]},
            {"action": "resume", "nodes": ["elastic1"], "image": "alpine"},
        ):
            answer = reply("slurm", request)
            assert answer["accepted"] is False, (request, answer)
            assert str(answer["message"]).startswith("refused: "), answer
        assert self.running_elastic() == []
        assert podman.container_by_name(f"{self.instance}-login") is not None

    def test_failed_start_and_vanished_node_requeue_the_job_and_it_recovers(
        self, live: LiveTestbed
    ) -> None:
        """With the group's image gone, a start fails: the node is DOWN with the reason and
        the job requeued. With the image back and the node returned (`scontrol update
        state=power_down_force`), the job runs on a started node; that node's container
        removed under it is noticed, the node is DOWN with the reason and the job
        requeued again. The next job's node is being started when `down` (the class's last
        test) removes it."""
        assert wait_for(self.all_powered_down, timeout=180, interval=3), self.states()
        baked = self.baked_image()
        hidden = f"{baked.rsplit(':', 1)[0]}:hidden-by-e2e"
        podman.run("tag", baked, hidden)
        podman.run("untag", baked, baked)  # that name only (no name: every name goes)
        try:
            job = self.submit("--wrap", "'sleep 600'")

            def failed_node() -> str:
                return next(
                    (
                        n
                        for n, s in self.states().items()
                        if "resume failed" in s.reason and s.state.startswith("down")
                    ),
                    "",
                )

            assert wait_for(lambda: bool(failed_node()), timeout=120, interval=2), self.states()
            assert "is missing" in self.states()[failed_node()].reason
            assert wait_for(lambda: "JobState=PENDING" in self.job(job), timeout=60), self.job(job)
        finally:
            podman.run("tag", hidden, baked)
            podman.run("untag", hidden, hidden)
        down = failed_node()
        self.slurm("scontrol", "update", f"nodename={down}", "state=power_down_force")
        # A requeued job waits out its begin time; this one may start now.
        self.slurm("scontrol", "update", f"jobid={job}", "starttime=now")

        def running_on() -> str:
            shown = self.job(job)
            if "JobState=RUNNING" not in shown:
                return ""
            return shown.split(" NodeList=")[1].split()[0]

        assert wait_for(lambda: bool(running_on()), timeout=300, interval=3), self.job(job)
        node = running_on()
        podman.run("rm", "--force", "--time", "0", f"{self.instance}-{node}")
        assert wait_for(
            lambda: "node vanished" in str(self.states().get(node, "")), timeout=60, interval=2
        ), self.states()
        assert wait_for(lambda: "JobState=PENDING" in self.job(job), timeout=60), self.job(job)
        assert "Restarts=2" in self.job(job), self.job(job)
        self.slurm("scancel", job)
        self.slurm("scontrol", "update", f"nodename={node}", "state=power_down_force")
        # A node being started when `down` comes: down stops the broker, then removes
        # what Slurm started (the class's last test finds nothing left).
        self.submit("--wrap", "'sleep 600'")
        assert wait_for(lambda: bool(self.running_elastic()), timeout=120, interval=1)

    def baked_image(self) -> str:
        """The elastic group's image for the instance's current inputs (what a start uses)."""
        plan = resolve(self.testbed, instance=self.instance)
        ref = baked_image_ref(plan, GROUP, base_image(plan))
        assert podman.image_exists(ref), f"no baked image {ref} of the elastic group"
        return ref


def broker_processes(instance: str) -> list[int]:
    """Node broker processes of the instance still running (none after `down`)."""
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if "testbeds.elastic.broker" in (proc.info["cmdline"] or [])
        and instance in (proc.info["cmdline"] or [])
    ]
