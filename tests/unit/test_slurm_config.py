"""slurm.conf rendered by the slurm role from the definition's traits and node groups."""

from __future__ import annotations

from pathlib import Path

from tests.render import render_role_template

HOSTS = {
    "ctl": {"testbed_node_group": "controller", "testbed_traits": {}},
    "cpu1": {"testbed_node_group": "cpu", "testbed_traits": {"cpus": 4, "memory_mb": 8000}},
    "cpu2": {"testbed_node_group": "cpu", "testbed_traits": {"cpus": 4, "memory_mb": 8000}},
    "big1": {
        "testbed_node_group": "big",
        "testbed_traits": {"cpus": 64, "memory_mb": 512000, "features": ["avx512", "ib"]},
    },
}
GROUPS = {
    "slurm_controller": ["ctl"],
    "slurm_compute": ["cpu1", "cpu2", "big1"],
    "controller": ["ctl"],
    "cpu": ["cpu1", "cpu2"],
    "big": ["big1"],
}


def render(tmp_path: Path, **extra: object) -> list[str]:
    facts = {"testbed_instance": "site-a", "testbed_node_groups": ["controller", "cpu", "big"]}
    text = render_role_template(
        "slurm", "slurm.conf.j2", tmp_path, HOSTS, GROUPS, "ctl", {**facts, **extra}
    )
    return text.splitlines()


def test_node_lines_follow_traits(tmp_path: Path) -> None:
    lines = render(tmp_path)
    assert "NodeName=cpu1 CPUs=4 RealMemory=8000 State=UNKNOWN" in lines
    assert "NodeName=big1 CPUs=64 RealMemory=512000 Features=avx512,ib State=UNKNOWN" in lines
    assert not any(line.startswith("NodeName=ctl") for line in lines)


def test_one_partition_per_node_group_first_default(tmp_path: Path) -> None:
    lines = render(tmp_path)
    assert "PartitionName=cpu Nodes=cpu1,cpu2 Default=YES MaxTime=INFINITE State=UP" in lines
    assert "PartitionName=big Nodes=big1 Default=NO MaxTime=INFINITE State=UP" in lines


def test_cgroups_switch_and_overrides(tmp_path: Path) -> None:
    with_cgroups = render(tmp_path)
    assert "ProctrackType=proctrack/cgroup" in with_cgroups
    assert "ClusterName=site_a" in with_cgroups
    without = render(tmp_path, slurm_use_cgroups=False, slurm_config={"MpiDefault": "pmix"})
    assert "ProctrackType=proctrack/linuxproc" in without
    assert "TaskPlugin=task/none" in without
    assert "MpiDefault=pmix" in without
    assert "MpiDefault=none" not in without


def test_explicit_partitions(tmp_path: Path) -> None:
    lines = render(
        tmp_path,
        slurm_partitions=[
            {"name": "all", "nodes": ["cpu1", "cpu2", "big1"], "options": {"MaxTime": "1:00:00"}},
        ],
    )
    assert "PartitionName=all Nodes=cpu1,cpu2,big1 Default=YES MaxTime=1:00:00 State=UP" in lines


def test_emulated_cpus_multiply_the_traits_and_say_so(tmp_path: Path) -> None:
    """A factor above 1 (the local target's) gives each node that many CPUs per CPU of its
    traits, tells slurmd to trust slurm.conf over what it finds, and labels the nodes."""
    lines = render(tmp_path, slurm_use_cgroups=False, slurm_emulated_cpu_factor=2)
    assert "NodeName=cpu1 CPUs=8 RealMemory=8000 Features=emulated_cpus State=UNKNOWN" in lines
    assert "SlurmdParameters=config_overrides" in lines
    plain = render(tmp_path)
    assert "NodeName=cpu1 CPUs=4 RealMemory=8000 State=UNKNOWN" in plain
    assert not any(line.startswith("SlurmdParameters=") for line in plain)
