"""Hardware paths that cannot run here, proven as far as they can be: InfiniBand detection and
the configs it renders for a node WITH an HCA, Slurm topology and GRES, the GPU driver pin."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.render import REPO, local_playbook, render_role_template, run_local_playbook


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


FPGA_HOSTS = {
    "ctl": {"testbed_node_group": "controller", "testbed_traits": {}},
    "acc1": {
        "testbed_node_group": "acc",
        "fpga_mode": "emulated",
        "testbed_traits": {"cpus": 8, "memory_mb": 64000, "fpgas": 2, "fpga_model": "u250"},
    },
    "acc2": {
        "testbed_node_group": "acc",
        "fpga_mode": "hardware",
        "fpga_device_files": ["/dev/xclmgmt256", "/dev/xclmgmt257"],
        "testbed_traits": {
            "cpus": 8,
            "memory_mb": 64000,
            "gpus": 1,
            "fpgas": 2,
            "fpga_model": "u250",
            "scratch": {"size_gb": 800, "path": "/local"},
        },
    },
}
FPGA_GROUPS = {
    "slurm_controller": ["ctl"],
    "slurm_compute": ["acc1", "acc2"],
    "controller": ["ctl"],
    "acc": ["acc1", "acc2"],
}
FPGA_FACTS = {"testbed_instance": "t", "testbed_node_groups": ["controller", "acc"]}


def test_fpga_and_scratch_in_slurm_config(tmp_path: Path) -> None:
    """FPGA traits become GRES fpga (with the emulated_fpga feature when emulated); scratch
    becomes TmpDisk, the cluster's TmpFS and the job scratch scripts."""
    conf = render_role_template(
        "slurm", "slurm.conf.j2", tmp_path, FPGA_HOSTS, FPGA_GROUPS, "ctl", FPGA_FACTS
    )
    assert "GresTypes=gpu,fpga" in conf
    assert (
        "NodeName=acc1 CPUs=8 RealMemory=64000 Gres=fpga:u250:2 Features=emulated_fpga "
        "State=UNKNOWN"
    ) in conf
    assert (
        "NodeName=acc2 CPUs=8 RealMemory=64000 TmpDisk=819200 Gres=gpu:1,fpga:u250:2 "
        "Features=scratch State=UNKNOWN"
    ) in conf
    assert "TmpFS=/local" in conf
    assert "Prolog=/etc/slurm/job-prolog" in conf
    assert "Epilog=/etc/slurm/job-epilog" in conf
    gres = render_role_template(
        "slurm", "gres.conf.j2", tmp_path, FPGA_HOSTS, FPGA_GROUPS, "ctl", FPGA_FACTS
    )
    # Emulated: counted only. Real cards: one device file each, so jobs are confined to theirs.
    assert "NodeName=acc1 Name=fpga Type=u250 Count=2" in gres
    assert "NodeName=acc2 Name=fpga Type=u250 File=/dev/xclmgmt256,/dev/xclmgmt257" in gres


def test_no_scratch_keeps_default_tmpfs_and_the_epilog(tmp_path: Path) -> None:
    """Without scratch on any node, slurm.conf keeps Slurm's default TmpFS; the job scripts
    stay (the Epilog's completion message lets slurmctld schedule the next job at once)."""
    conf = render_role_template("slurm", "slurm.conf.j2", tmp_path, HOSTS, GROUPS, "ctl", FACTS)
    assert "TmpFS=" not in conf
    assert "Epilog=/etc/slurm/job-epilog" in conf


def run_fpga_detect(
    tmp_path: Path, vendors: list[str], mode: str
) -> subprocess.CompletedProcess[str]:
    """Run the fpga role's own detection against a fake sysfs; write what it chose to a file."""
    sysfs = tmp_path / "pci"
    sysfs.mkdir(parents=True)
    for i, vendor in enumerate(vendors):
        (sysfs / f"0000:0{i}:00.0").mkdir()
        (sysfs / f"0000:0{i}:00.0" / "vendor").write_text(vendor + "\n")
    role = REPO / "roles" / "fpga"
    tasks = [
        {"ansible.builtin.include_vars": str(role / "defaults" / "main.yml")},
        {
            "ansible.builtin.set_fact": {
                "fpga_pci_devices_dir": str(sysfs),
                "fpga_mode": mode,
                "fpga_count": 2,
            }
        },
        {"ansible.builtin.include_tasks": str(role / "tasks" / "detect.yml")},
        {
            "ansible.builtin.copy": {
                "content": "{{ {'mode': __fpga_effective_mode, 'found': __fpga_found} | to_json }}",
                "dest": str(tmp_path / "chosen.json"),
                "mode": "0644",
            }
        },
    ]
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    return local_playbook(tmp_path / "play.yml", "localhost,")


def test_fpga_cards_found_choose_hardware(tmp_path: Path) -> None:
    """Two Xilinx cards (vendor 0x10ee) among other PCI devices: hardware mode, both found."""
    proc = run_fpga_detect(tmp_path, ["0x8086", "0x10ee", "0x10ee", "0x15b3"], "auto")
    assert proc.returncode == 0, proc.stdout
    chosen = json.loads((tmp_path / "chosen.json").read_text())
    assert chosen == {"mode": "hardware", "found": ["xilinx", "xilinx"]}


def test_fpga_node_without_cards_is_refused_unless_emulated(tmp_path: Path) -> None:
    """No card and mode auto: the run fails saying how to emulate; emulated mode passes."""
    refused = run_fpga_detect(tmp_path / "a", ["0x8086"], "auto")
    assert refused.returncode != 0
    assert "declared with 2 FPGA(s) but none was found" in refused.stdout
    too_few = run_fpga_detect(tmp_path / "b", ["0x1172"], "hardware")
    assert too_few.returncode != 0
    assert "1 of 2 FPGA cards were found" in too_few.stdout
    emulated = run_fpga_detect(tmp_path / "c", [], "emulated")
    assert emulated.returncode == 0, emulated.stdout


def render_scratch_script(tmp_path: Path, name: str, base: Path, traits: dict) -> Path:
    text = render_role_template(
        "slurm_compute", f"{name}.j2", tmp_path, {"n": {}}, {}, "n",
        {"__slurm_scratch_path": str(base), "testbed_traits": traits},
    )  # fmt: skip
    script = tmp_path / name
    script.write_text(text)
    script.chmod(0o755)
    return script


def test_job_scratch_scripts_make_name_and_remove_the_directory(tmp_path: Path) -> None:
    """The Prolog makes job_<id> private to the job's user, the TaskProlog names it (and
    TMPDIR, and OpenMPI's shared-memory folder), the Epilog removes it and nothing else; a
    malformed job id touches nothing."""
    base = tmp_path / "scratch"
    base.mkdir()
    (base / "other").mkdir()
    traits = {"scratch": {"size_gb": 1, "path": str(base)}}
    scripts = {
        name: render_scratch_script(tmp_path, name, base, traits)
        for name in ("job-prolog", "job-task-prolog", "job-epilog")
    }
    job = {**os.environ, "SLURM_JOB_ID": "42", "SLURM_JOB_UID": str(os.getuid())}
    subprocess.run([scripts["job-prolog"]], env=job, check=True)
    directory = base / "job_42"
    assert directory.is_dir() and (directory.stat().st_mode & 0o777) == 0o700
    exported = subprocess.run(
        [scripts["job-task-prolog"]], env=job, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert exported == [
        f"export LOCAL_SCRATCH={directory}",
        f"export TMPDIR={directory}",
        f"export OMPI_MCA_btl_vader_backing_directory={directory}",
    ]
    hostile = {**job, "SLURM_JOB_ID": "../other"}
    subprocess.run([scripts["job-epilog"]], env=hostile, check=True)
    assert (base / "other").is_dir()
    subprocess.run([scripts["job-epilog"]], env=job, check=True)
    assert not directory.exists() and (base / "other").is_dir()


def test_job_scratch_scripts_do_nothing_on_nodes_without_scratch(tmp_path: Path) -> None:
    """Slurm runs the cluster's Prolog on every node: where the node has no scratch disk the
    scripts make nothing and name nothing."""
    base = tmp_path / "scratch"
    base.mkdir()
    job = {**os.environ, "SLURM_JOB_ID": "7", "SLURM_JOB_UID": str(os.getuid())}
    for name in ("job-prolog", "job-task-prolog", "job-epilog"):
        script = render_scratch_script(tmp_path, name, base, {"cpus": 2})
        out = subprocess.run([script], env=job, check=True, capture_output=True, text=True)
        assert out.stdout == ""
    assert list(base.iterdir()) == []
