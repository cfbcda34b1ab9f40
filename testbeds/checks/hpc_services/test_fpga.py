"""FPGA nodes: Slurm GRES fpga hands out the card, and an OpenCL kernel runs on it (on the
local target an OpenCL device on the CPU stands in, labelled "emulated FPGA")."""

from __future__ import annotations

import json
import re

import pytest


def fpga_fact(host) -> dict:
    return json.loads(host.file("/etc/ansible/facts.d/fpga.fact").content_string)


def fpga_node(testbed) -> tuple[str, str]:
    """The first FPGA node and its partition (one per node group)."""
    name = testbed.group("fpga")[0]
    return name, testbed.node(name).group


@pytest.mark.nodes("fpga")
def test_fpga_mode_recorded_and_labelled(host, node, testbed):
    """The node records its FPGA mode and count as the definition gives them; an emulated
    FPGA says so in the node's login message."""
    fact = fpga_fact(host)
    assert fact["mode"] in ("hardware", "emulated")
    assert fact["count"] == testbed.traits(node)["fpgas"]
    if fact["mode"] == "emulated":
        assert "emulated FPGA" in host.file("/etc/motd.d/wp5-emulated-fpga").content_string
    else:
        assert len(fact["device_files"]) == fact["count"]


def test_slurm_schedules_the_fpgas(testbed):
    """scontrol shows the node's GRES fpga with the definition's model and count (and the
    emulated_fpga feature when emulated)."""
    name, _ = fpga_node(testbed)
    fact = fpga_fact(testbed.host(name))
    login = testbed.host(testbed.group("slurm_login")[0])
    info = login.check_output(f"scontrol show node {name}")
    model = f"{fact['model']}:" if fact["model"] else ""
    assert re.search(rf"Gres=\S*fpga:{model}{fact['count']}", info), info
    assert ("emulated_fpga" in info) == (fact["mode"] == "emulated"), info


def test_fpga_job_sees_one_device_and_runs_a_kernel(testbed, user_shell):
    """srun --gres=fpga:1 as the research user: clinfo lists one OpenCL device, and the
    vector-add example computes the right result on it."""
    name, partition = fpga_node(testbed)
    login = testbed.host(testbed.group("slurm_login")[0])
    listed = user_shell(login, f"srun -p {partition} -w {name} --gres=fpga:1 clinfo -l")
    assert listed.rc == 0, listed.stderr
    assert len(re.findall(r"Device #\d+", listed.stdout)) == 1, listed.stdout
    ran = user_shell(login, f"srun -p {partition} -w {name} --gres=fpga:1 fpga-vector-add")
    assert ran.rc == 0, ran.stdout + ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["size"] > 0, result


def test_more_fpgas_than_exist_is_refused(testbed, user_shell):
    """A job asking for more FPGAs than the node has is refused at submission."""
    name, partition = fpga_node(testbed)
    count = fpga_fact(testbed.host(name))["count"]
    login = testbed.host(testbed.group("slurm_login")[0])
    out = user_shell(login, f"sbatch -p {partition} --gres=fpga:{count + 1} --wrap true")
    assert out.rc != 0
    assert "Requested node configuration is not available" in out.stderr
