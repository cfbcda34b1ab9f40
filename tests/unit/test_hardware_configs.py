"""Hardware paths that cannot run here, proven as far as they can be: InfiniBand detection and
the configs it renders for a node WITH an HCA, Slurm topology and GRES, the GPU driver pin."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.render import REPO, render_role_template, run_local_playbook


def run_infiniband_detect(tmp_path: Path, hcas: list[str]) -> dict[str, str]:
    """Run the infiniband role's own detection against a fake sysfs, then render its templates."""
    sysfs = tmp_path / "sysfs"
    sysfs.mkdir()
    for hca in hcas:
        (sysfs / hca).mkdir()
    out = tmp_path / "out"
    out.mkdir()
    role = REPO / "roles" / "infiniband"
    tasks = [
        {"ansible.builtin.include_vars": str(role / "defaults" / "main.yml")},
        {"ansible.builtin.include_vars": str(role / "vars" / "main.yml")},
        {
            "ansible.builtin.set_fact": {
                "infiniband_sysfs_dir": str(sysfs),
                "infiniband_tcp_interface": "eth0",
                "infiniband_ipoib_address": "10.20.0.11/16",
            }
        },
        {"ansible.builtin.include_tasks": str(role / "tasks" / "detect.yml")},
    ] + [
        {
            "ansible.builtin.template": {
                "src": str(role / "templates" / name),
                "dest": str(out / name),
                "mode": "0644",
            }
        }
        for name in ("ucx.conf.j2", "openmpi-mca-params.conf.j2", "ipoib.network.j2")
    ]
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    run_local_playbook(tmp_path / "play.yml", "localhost,")
    return {p.name: p.read_text() for p in out.iterdir()}


def test_node_with_hca_uses_rdma(tmp_path: Path) -> None:
    """Two mlx5 HCAs found: UCX over RC/UD on both ports, OpenMPI through UCX, IPoIB set."""
    rendered = run_infiniband_detect(tmp_path, ["mlx5_0", "mlx5_1"])
    ucx = rendered["ucx.conf.j2"]
    assert "UCX_NET_DEVICES=mlx5_0:1,mlx5_1:1" in ucx
    assert "UCX_TLS=rc,ud,sm,self" in ucx
    mca = rendered["openmpi-mca-params.conf.j2"]
    assert "pml = ucx" in mca and "btl = ^openib,uct" in mca
    ipoib = rendered["ipoib.network.j2"]
    assert "Name=ib0" in ipoib and "Address=10.20.0.11/16" in ipoib and "MTUBytes=2044" in ipoib


def test_node_without_hca_falls_back_to_tcp(tmp_path: Path) -> None:
    """No HCA: UCX and OpenMPI over TCP on the Ethernet interface, and the files say so."""
    rendered = run_infiniband_detect(tmp_path, [])
    assert "UCX_TLS=tcp,sm,self" in rendered["ucx.conf.j2"]
    assert "No InfiniBand HCA" in rendered["ucx.conf.j2"]
    mca = rendered["openmpi-mca-params.conf.j2"]
    assert "pml = ob1" in mca and "btl_tcp_if_include = eth0" in mca


HOSTS = {
    "ctl": {"testbed_node_group": "controller", "testbed_traits": {}},
    "cpu1": {"testbed_node_group": "cpu", "testbed_traits": {"cpus": 2, "memory_mb": 1000}},
    "gpu1": {
        "testbed_node_group": "gpu",
        "nvidia_gpu_mode": "emulated",
        "testbed_traits": {"cpus": 8, "memory_mb": 64000, "gpus": 4, "gpu_model": "a100"},
    },
    "gpu2": {
        "testbed_node_group": "gpu",
        "testbed_traits": {"cpus": 8, "memory_mb": 64000, "gpus": 1, "gpu_model": ""},
    },
}
GROUPS = {
    "slurm_controller": ["ctl"],
    "slurm_compute": ["cpu1", "gpu1", "gpu2"],
    "controller": ["ctl"],
    "cpu": ["cpu1"],
    "gpu": ["gpu1", "gpu2"],
}
FACTS = {"testbed_instance": "t", "testbed_node_groups": ["controller", "cpu", "gpu"]}


def test_gres_lines_and_gpu_node_lines(tmp_path: Path) -> None:
    """GPU traits become GresTypes, Gres= on the node line and gres.conf device files;
    emulated GPUs carry the emulated_gpu feature."""
    conf = render_role_template("slurm", "slurm.conf.j2", tmp_path, HOSTS, GROUPS, "ctl", FACTS)
    assert "GresTypes=gpu" in conf
    assert (
        "NodeName=gpu1 CPUs=8 RealMemory=64000 Gres=gpu:a100:4 Features=emulated_gpu State=UNKNOWN"
    ) in conf
    assert "NodeName=gpu2 CPUs=8 RealMemory=64000 Gres=gpu:1 State=UNKNOWN" in conf
    gres = render_role_template("slurm", "gres.conf.j2", tmp_path, HOSTS, GROUPS, "ctl", FACTS)
    assert "NodeName=gpu1 Name=gpu Type=a100 File=/dev/nvidia[0-3]" in gres
    assert "NodeName=gpu2 Name=gpu File=/dev/nvidia0" in gres
    assert "cpu1" not in gres


def test_topology_from_definition(tmp_path: Path) -> None:
    """slurm_topology becomes topology.conf and switches the topology/tree plugin on."""
    topology = [
        {"name": "leaf1", "nodes": ["cpu1"]},
        {"name": "leaf2", "nodes": ["gpu1", "gpu2"]},
        {"name": "spine", "switches": ["leaf1", "leaf2"]},
    ]
    facts = {**FACTS, "slurm_topology": topology}
    conf = render_role_template("slurm", "slurm.conf.j2", tmp_path, HOSTS, GROUPS, "ctl", facts)
    assert "TopologyPlugin=topology/tree" in conf
    text = render_role_template("slurm", "topology.conf.j2", tmp_path, HOSTS, GROUPS, "ctl", facts)
    assert "SwitchName=leaf2 Nodes=gpu1,gpu2" in text
    assert "SwitchName=spine Switches=leaf1,leaf2" in text


def test_gpu_driver_branch_pinned(tmp_path: Path) -> None:
    """On real hardware the driver packages are pinned to the site's branch."""
    hosts = {"gpu1": HOSTS["gpu1"]}
    pin = render_role_template(
        "nvidia_gpu",
        "nvidia-pin.pref.j2",
        tmp_path,
        hosts,
        {},
        "gpu1",
        {"nvidia_gpu_driver_version": "535"},
    )
    assert "Pin: version 535.*" in pin and "Pin-Priority: 1001" in pin


def test_interlink_configs_render_for_the_api_and_the_slurm_plugin(tmp_path: Path) -> None:
    """The interlink role (which cannot run here: no binaries or Apptainer) renders the API's
    and the plugin's configuration as YAML with their ports on loopback, and an nginx site
    that refuses requests without the token."""
    hosts = {"login": {}}
    groups = {"slurm_login": ["login"]}
    extra = {"interlink_sbatch_flags": ["--partition=cpu"]}
    for folder in "apn":
        (tmp_path / folder).mkdir()
    api = yaml.safe_load(
        render_role_template(
            "interlink", "InterLinkConfig.yaml.j2", tmp_path / "a", hosts, groups, "login"
        )
    )
    assert api["InterlinkAddress"] == "http://127.0.0.1" and api["InterlinkPort"] == "3000"
    assert api["SidecarPort"] == "4000"
    plugin = yaml.safe_load(
        render_role_template(
            "interlink", "SlurmConfig.yaml.j2", tmp_path / "p", hosts, groups, "login", extra
        )
    )
    assert plugin["SbatchPath"] == "/usr/bin/sbatch" and plugin["SbatchFlags"] == [
        "--partition=cpu"
    ]
    site = render_role_template(
        "interlink", "nginx-interlink.conf.j2", tmp_path / "n", hosts, groups, "login"
    )
    assert "listen 3443 ssl;" in site and "return 401;" in site
    assert "proxy_pass http://127.0.0.1:3000;" in site
