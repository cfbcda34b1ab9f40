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


ELASTIC = [
    {"name": f"burst{i}", "group": "burst", "traits": {"cpus": 2, "memory_mb": 1000}}
    for i in (1, 2, 3)
]


def test_elastic_nodes_are_cloud_nodes_in_their_own_partition(tmp_path: Path) -> None:
    """Slurm knows every elastic node from the start (State=CLOUD, same traits), its group
    is a partition, and power saving calls the controller's programs; static nodes are
    never suspended."""
    lines = render(
        tmp_path,
        testbed_elastic_nodes=ELASTIC,
        testbed_node_groups=["controller", "cpu", "big", "burst"],
    )
    assert "NodeName=burst2 CPUs=2 RealMemory=1000 Features=elastic State=CLOUD" in lines
    assert "NodeName=cpu1 CPUs=4 RealMemory=8000 State=UNKNOWN" in lines
    assert (
        "PartitionName=burst Nodes=burst1,burst2,burst3 Default=NO MaxTime=INFINITE State=UP"
        in lines
    )
    assert "PartitionName=cpu Nodes=cpu1,cpu2 Default=YES MaxTime=INFINITE State=UP" in lines
    assert "ResumeProgram=/usr/local/libexec/testbed-elastic/resume" in lines
    assert "SuspendProgram=/usr/local/libexec/testbed-elastic/suspend" in lines
    assert "SuspendTime=60" in lines
    assert "SuspendExcNodes=big1,cpu1,cpu2" in lines
    assert "SlurmctldParameters=power_save_interval=2" in lines
    assert "PrivateData=cloud" in lines


def test_a_resumed_node_in_the_inventory_is_listed_once_as_elastic(tmp_path: Path) -> None:
    """The node being configured is in the inventory's compute group too: slurm.conf is the
    same as on every other node, so Slurm finds no difference between them."""
    hosts = {**HOSTS, "burst1": {"testbed_node_group": "burst", "testbed_traits": {"cpus": 2}}}
    groups = {**GROUPS, "slurm_compute": [*GROUPS["slurm_compute"], "burst1"], "burst": ["burst1"]}
    facts = {
        "testbed_instance": "site-a",
        "testbed_node_groups": ["controller", "cpu", "big", "burst"],
        "testbed_elastic_nodes": ELASTIC,
    }
    on_node = render_role_template(
        "slurm", "slurm.conf.j2", tmp_path, hosts, groups, "burst1", facts
    ).splitlines()
    (tmp_path / "controller").mkdir()
    on_controller = render_role_template(
        "slurm", "slurm.conf.j2", tmp_path / "controller", HOSTS, GROUPS, "ctl", facts
    ).splitlines()
    assert [line for line in on_node if line.startswith("NodeName=burst1")] == [
        "NodeName=burst1 CPUs=2 RealMemory=1000 Features=elastic State=CLOUD"
    ]
    assert on_node[2:] == on_controller[2:]  # after the managed-file header


def test_without_elastic_nodes_there_is_no_power_saving(tmp_path: Path) -> None:
    lines = render(tmp_path)
    assert not any(
        line.startswith(("ResumeProgram", "SuspendTime", "SuspendExcNodes")) for line in lines
    )


def test_elastic_nodes_carry_their_groups_gres(tmp_path: Path) -> None:
    """An elastic GPU group's nodes are listed with their GRES like static ones, and the
    cluster's GresTypes covers them even while no static node has a GPU."""
    gpus = [
        {
            "name": f"gpuburst{i}",
            "group": "gpuburst",
            "traits": {"cpus": 8, "gpus": 2, "gpu_model": "a100"},
        }
        for i in (1, 2)
    ]
    lines = render(tmp_path, testbed_elastic_nodes=gpus)
    assert (
        "NodeName=gpuburst1 CPUs=8 RealMemory=1000 Gres=gpu:a100:2 Features=elastic State=CLOUD"
        in lines
    )
    assert "GresTypes=gpu" in lines
