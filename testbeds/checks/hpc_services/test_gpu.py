"""GPU nodes: Slurm GRES hands out GPUs (emulated on the local target, and labelled so)."""

from __future__ import annotations

import json
import re

import pytest

from testbeds.checks.helpers import wait_for


def gpu_mode(testbed) -> dict:
    node = testbed.host(testbed.group("nvidia_gpu")[0])
    return json.loads(node.file("/etc/ansible/facts.d/nvidia_gpu.fact").content_string)


@pytest.mark.nodes("nvidia_gpu")
def test_gpu_mode_recorded_and_labelled(host):
    """The node records its GPU mode; emulated GPUs say so in the node's login message."""
    fact = json.loads(host.file("/etc/ansible/facts.d/nvidia_gpu.fact").content_string)
    assert fact["mode"] in ("hardware", "emulated")
    assert fact["count"] > 0
    if fact["mode"] == "emulated":
        assert "emulated GPU" in host.file("/etc/motd.d/wp5-emulated-gpu").content_string


def test_slurm_knows_the_gpus(testbed):
    """scontrol shows the GPU node's GRES from the definition (and the emulated_gpu feature)."""
    fact = gpu_mode(testbed)
    name = testbed.group("nvidia_gpu")[0]
    login = testbed.host(testbed.group("slurm_login")[0])
    info = login.check_output(f"scontrol show node {name}")
    assert re.search(rf"Gres=gpu:{fact['model']}:{fact['count']}", info), info
    if fact["mode"] == "emulated":
        assert "emulated_gpu" in info


def test_gpu_job_gets_cuda_visible_devices(testbed, user_shell):
    """srun --gres=gpu:1 gives the job one GPU through CUDA_VISIBLE_DEVICES."""
    login = testbed.host(testbed.group("slurm_login")[0])
    out = user_shell(login, "srun -p gpu --gres=gpu:1 printenv CUDA_VISIBLE_DEVICES")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "0"
    two = user_shell(login, "srun -p gpu --gres=gpu:2 printenv CUDA_VISIBLE_DEVICES")
    assert two.stdout.strip() == "0,1", two.stderr


def test_more_gpus_than_free_waits_for_resources(testbed, user_shell):
    """While one job holds every GPU, a job asking for one stays pending (Reason=Resources)."""
    fact = gpu_mode(testbed)
    login = testbed.host(testbed.group("slurm_login")[0])
    hold = user_shell(
        login, f"sbatch --parsable -p gpu --gres=gpu:{fact['count']} -t 2 --wrap 'sleep 60'"
    )
    assert hold.rc == 0, hold.stderr
    waiting = user_shell(login, "sbatch --parsable -p gpu --gres=gpu:1 -t 1 --wrap true")
    assert waiting.rc == 0, waiting.stderr
    hold_id, wait_id = hold.stdout.strip(), waiting.stdout.strip()
    try:

        def state(job: str) -> str:
            return login.run(f"squeue -h -j {job} -o '%T %r'").stdout.strip()

        assert wait_for(lambda: state(hold_id).startswith("RUNNING"), timeout=30), state(hold_id)
        assert wait_for(lambda: state(wait_id) == "PENDING Resources", timeout=30), state(wait_id)
    finally:
        login.run(f"scancel {hold_id} {wait_id}")


def test_more_gpus_than_exist_is_refused(testbed, user_shell):
    """A job asking for more GPUs than any node has is refused at submission."""
    fact = gpu_mode(testbed)
    login = testbed.host(testbed.group("slurm_login")[0])
    out = user_shell(login, f"sbatch -p gpu --gres=gpu:{fact['count'] + 1} --wrap true")
    assert out.rc != 0
    assert "Requested node configuration is not available" in out.stderr
