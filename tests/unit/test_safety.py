"""Safe by default, without a testbed: instance names never reach outside the state root,
one command at a time per instance, secrets private from their first byte, nothing from
the caller's environment in Ansible's artifacts, deadlines on external calls, and input
from definitions and site profiles treated as data."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbeds import deadlines, deploy
from testbeds.cli import main
from testbeds.errors import DefinitionError, PreflightError
from testbeds.locks import instance_lock
from testbeds.model.plan import resolve
from testbeds.runner import run_playbook
from testbeds.sshconfig import Bastion, Login, write_ssh_config
from testbeds.sshkeys import ensure_client_key
from testbeds.state import InstanceRecord, StateDir, write_private
from testbeds.targets.base import run_stack_operation
from tests.conftest import REPO


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("testbed"), err
    return err[0]


def make_instance(root: Path, name: str, target: str = "local") -> StateDir:
    state = StateDir(name, root=root)
    state.write_record(InstanceRecord("smoke", "smoke", "local", target, name))
    write_private(state.secrets_dir / "munge.key", b"k" * 32)
    return state


# 1. Instance names


@pytest.mark.parametrize("name", [".", "..", "", "/tmp", "../x", "a/b", "UPPER", "x_y", "x" * 40])
@pytest.mark.parametrize("command", ["down", "verify", "status"])
def test_a_name_that_is_not_an_instance_touches_nothing(
    name: str, command: str, isolated_state: Path, tmp_path: Path, capsys: Any
) -> None:
    """down/verify/status of `.`, `..`, '', a path: exit 2, one line, every other instance's
    state and every folder outside left as it was."""
    other = make_instance(isolated_state, "other")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    assert main([command, name]) == 2
    assert "is not valid" in one_error_line(capsys)
    assert other.exists() and (other.secrets_dir / "munge.key").is_file()
    assert (outside / "keep").is_file()


def test_down_of_an_instance_without_state_removes_nothing(
    isolated_state: Path, capsys: Any
) -> None:
    """`down` of an instance with no state says so and deletes nothing."""
    other = make_instance(isolated_state, "other")
    assert main(["down", "never-made"]) == 0
    assert "nothing was removed" in capsys.readouterr().out
    assert other.exists()
    assert not (isolated_state / "never-made").exists()


def test_state_directory_is_always_a_direct_child_of_the_root(tmp_path: Path) -> None:
    state = StateDir("abc", root=tmp_path)
    assert state.path.parent == tmp_path
    with pytest.raises(Exception, match="not valid"):
        StateDir("..", root=tmp_path)


# 2. Locks, the key pair, orphans of a killed run

HOLDER = """
import sys, time
from testbeds.locks import instance_lock
with instance_lock(sys.argv[1], "testbed up smoke --instance " + sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_command_on_a_busy_instance_names_the_holder(
    isolated_state: Path, capsys: Any
) -> None:
    """While one command holds an instance, down/verify/up exit 2 naming pid, command and
    start; the state is untouched."""
    state = make_instance(isolated_state, "busy")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "busy"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for command in (["down", "busy"], ["verify", "busy"]):
            assert main(command) == 2
            line = one_error_line(capsys)
            assert f"pid {holder.pid}" in line and "testbed up smoke" in line, line
            assert "started 20" in line
        assert state.exists()
    finally:
        holder.kill()
        holder.wait()
    with instance_lock("busy", "testbed down busy"):  # released when its holder died
        pass


def test_the_client_key_pair_is_whole_or_absent(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed between writing the private and the public key leaves no half pair;
    the next run makes a whole one."""
    state = StateDir("keys")
    state.create()
    calls = []

    def failing_write(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write_private(path, data)

    monkeypatch.setattr("testbeds.sshkeys.write_private", failing_write)
    with pytest.raises(KeyboardInterrupt):
        ensure_client_key(state)
    assert not (state.secrets_dir / "ssh-client").exists()
    assert [p for p in state.secrets_dir.iterdir()] == []
    monkeypatch.undo()
    private, public = ensure_client_key(state)
    assert private.is_file() and public.is_file()
    assert ensure_client_key(state) == (private, public)


PASSWORD_LOOKUP = "{{ lookup('ansible.builtin.password', secrets_file ~ ' length=16') }}"
LOCAL_PLAYBOOK = [
    {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Make a generated password on the control node",
                "ansible.builtin.set_fact": {"secret": PASSWORD_LOOKUP},
                "no_log": True,
            },
            {"name": "Pause", "ansible.builtin.pause": {"seconds": "{{ pause_s | int }}"}},
        ],
    }
]


def local_inventory(tmp_path: Path, pause_s: int) -> Path:
    inventory = tmp_path / "inventory" / "hosts.yml"
    inventory.parent.mkdir(parents=True)
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"localhost": {"ansible_connection": "local"}},
                    "vars": {
                        "ansible_python_interpreter": sys.executable,
                        "secrets_file": str(tmp_path / "secrets" / "generated"),
                        "pause_s": pause_s,
                    },
                }
            }
        )
    )
    (tmp_path / "play.yml").write_text(yaml.safe_dump(LOCAL_PLAYBOOK))
    return inventory


def test_a_run_stops_orphans_keeps_the_environment_out_and_writes_secrets_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before it starts, a run stops an ansible-playbook a SIGKILLed predecessor left on the
    same inventory; nothing in the caller's environment (cloud passwords, CI tokens) lands in
    ansible-runner's artifacts; a password Ansible generates is 0600 even under umask 0."""
    inventory = local_inventory(tmp_path, pause_s=0)
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "ansible-playbook", str(inventory)]
    )
    marker = f"leak-marker-{os.getpid()}-{time.time_ns()}"
    monkeypatch.setenv("OS_PASSWORD", marker)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", marker)
    monkeypatch.setenv("CI_JOB_TOKEN", marker)
    old_umask = os.umask(0)
    try:
        result = run_playbook(tmp_path / "play.yml", [str(inventory)], tmp_path / "runner", 1)
    finally:
        os.umask(old_umask)
    assert result.ok, result.failures
    assert orphan.wait(timeout=10) is not None
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and marker in p.read_text("latin-1")]
    assert leaked == []
    assert stat.S_IMODE((tmp_path / "secrets" / "generated").stat().st_mode) == 0o600


# 3. bake's builder instance


def test_bake_uses_a_name_no_user_instance_can_have(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder is `bake.<testbed>`: refused as a user name, never `bake-<testbed>`; and a
    bake refuses to start when anything already carries the builder's names."""
    from testbeds import bake
    from testbeds.targets.local import podman

    plan = resolve(str(REPO / "tests" / "fixtures" / "smoke.yaml"))
    builder = bake.builder_instance(plan)
    assert builder == "bake.smoke"
    assert main(["down", builder]) == 2
    assert main(["down", "bake-smoke"]) == 0  # a user's instance of that name: not the bake's
    monkeypatch.setattr(podman, "container_by_name", lambda name: {"Names": [name]})
    monkeypatch.setattr(podman, "network_exists", lambda name: False)
    monkeypatch.setattr(podman, "volumes", lambda label: [])
    from dataclasses import replace

    with pytest.raises(PreflightError, match="already exists"):
        bake.refuse_existing_builder(replace(plan, instance=builder))


# 5. Static sites keep their secrets


def test_down_on_a_static_site_keeps_the_secrets(isolated_state: Path, capsys: Any) -> None:
    """The site's hosts keep using the CA, munge key and passwords: `down` moves them to a
    dated backup (0700) and says where, instead of deleting the only copy."""
    make_instance(isolated_state, "site-slurm", target="static")
    assert main(["down", "site-slurm"]) == 0
    out = capsys.readouterr().out
    kept = Path(out.split("secrets kept in ", 1)[1].split()[0])
    assert (kept / "munge.key").read_bytes() == b"k" * 32
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert not (isolated_state / "site-slurm").exists()


# 6. Modes


def test_state_and_secrets_are_private_from_the_first_byte(tmp_path: Path) -> None:
    """State root and instance folders 0700; secrets 0600 even under umask 0, with no
    temporary file left beside them."""
    old = os.umask(0)
    try:
        state = StateDir("modes", root=tmp_path / "root")
        state.create()
        path = state.secret("db-password", 24)
        state.secret("munge.key", 16)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "root").stat().st_mode) == 0o700
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in state.secrets_dir.iterdir()) == ["db-password", "munge.key"]


# 12 and 13. Definitions and site profiles as data


def write_definition(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load((REPO / "tests" / "fixtures" / "smoke.yaml").read_text())
    data.update(changes)
    path = tmp_path / "def.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "variables",
    [
        {"x\nansible_connection": "local"},
        {"ansible_connection": "local"},
        {"ansible_ssh_common_args": "-o ProxyCommand=sh"},
        {"ansible_become_user": "root"},
        {"testbed_secrets_dir": "/"},
        {"Bad-Name": 1},
    ],
)
def test_connection_and_odd_variables_are_refused(
    variables: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    """A definition cannot set connection or privilege variables, nor keys that are not
    plain variable names (a newline in a key injected inventory lines)."""
    path = write_definition(tmp_path, vars=variables)
    assert main(["show", str(path)]) == 2
    assert f"{path}: vars" in one_error_line(capsys)


def test_inventory_keys_are_quoted(tmp_path: Path) -> None:
    from testbeds.inventory import render_inventory
    from testbeds.nodes import ProvisionedNode

    plan = resolve(str(REPO / "tests" / "fixtures" / "smoke.yaml"))
    nodes = [ProvisionedNode(n.name, n.group, n.roles, "10.0.0.1", "") for n in plan.nodes]
    text = render_inventory(plan, nodes, {"plain_key": "a: b\nansible_connection: local"})
    assert '"plain_key": "a: b\\nansible_connection: local"' in text
    assert "ansible_connection" not in yaml.safe_load(text)["all"]["vars"]


SITE = {
    "name": "evil",
    "static": {"private_key": "id", "known_hosts": "kh", "bastion": {"host": "b.example"}},
    "local": {"debian_mirror": "http://deb.debian.org/debian"},
}


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("static", "user", "root\n  ProxyCommand sh -c id"),
        ("static", "private_key", 'id"\nHost *\n  StrictHostKeyChecking no'),
        ("static", "bastion", {"host": "b\n  ProxyCommand sh"}),
        ("static", "bastion", {"host": "-oProxyCommand=sh"}),
        ("local", "debian_mirror", "http://x/'; touch /tmp/pwned; '"),
        ("local", "debian_mirror", "http://x/$(id)"),
        ("openstack", "ssh_user", "debian\nruncmd: [id]"),
        ("kubernetes", "images", {"mlflow": "ghcr.io/mlflow/mlflow:latest"}),
        ("kubernetes", "images", {"registry": "registry"}),
    ],
)
def test_site_fields_are_validated(
    section: str, key: str, value: Any, scratch_home: Path, capsys: Any
) -> None:
    """Users, hosts, paths and the mirror are checked as data: a value that would inject an
    ssh_config option, a cloud-init key or shell is refused naming the file and field."""
    site = json.loads(json.dumps(SITE))
    if section == "openstack":
        site["openstack"] = {
            "cloud": "c",
            "external_network": "e",
            "image": "i",
            "flavor": "f",
            "allowed_ssh_cidrs": ["192.0.2.0/24"],
        }
    site.setdefault(section, {})[key] = value
    folder = scratch_home / "inventories" / "evil"
    folder.mkdir()
    (folder / "site.yml").write_text(yaml.safe_dump(site))
    (folder / "hosts.yml").write_text("all: {}\n")
    assert main(["show", "hpc-access", "--site", "evil"]) == 2
    assert f"{folder / 'site.yml'}: {section}.{key}" in one_error_line(capsys)


def test_ssh_config_values_are_quoted_and_checked(tmp_path: Path) -> None:
    state = StateDir("sshcfg", root=tmp_path)
    login = Login("debian", tmp_path / "key file", tmp_path / "known_hosts")
    path = write_ssh_config(state, {"node1": ("10.0.0.5", 22)}, login, Bastion("b.example", "u"))
    text = path.read_text()
    assert f'IdentityFile "{tmp_path}/key file"' in text and 'HostName "10.0.0.5"' in text
    with pytest.raises(ValueError, match="refusing"):
        write_ssh_config(state, {"node1": ('x"\n  ProxyCommand sh', 22)}, login, None)


@pytest.mark.parametrize(
    "mirror",
    [
        "http://mirror.example/debian $(echo INJECTED)",
        "http://mirror.example/debian'; echo INJECTED; '",
        "http://mirror.example/debian`echo INJECTED`",
    ],
)
def test_the_mirror_is_shell_quoted_in_the_image_script(tmp_path: Path, mirror: str) -> None:
    """The image's setup script, run by a shell up to its sources list (written here, not in
    /etc), holds the mirror as data: a mirror that reads as shell code runs nothing."""
    from testbeds.targets.local import image

    script = image.setup_script(mirror, "bookworm")
    head = script.split("cat > /etc/dpkg", 1)[0].replace("/etc/apt/sources.list", "sources")
    done = subprocess.run(
        ["sh", "-c", head], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "INJECTED" not in done.stdout + done.stderr
    assert (tmp_path / "sources").read_text().splitlines() == [
        f"deb {mirror} bookworm main",
        f"deb {mirror} bookworm-updates main",
    ]


# 14. YAML


def test_alias_amplification_is_refused_quickly(tmp_path: Path, capsys: Any) -> None:
    """613 bytes that expand to gigabytes: one line, exit 2, in well under a second."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    assert main(["show", str(path)]) == 2
    assert time.monotonic() - start < 5
    assert "aliases" in one_error_line(capsys)


def test_duplicate_keys_are_an_error(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text((REPO / "tests" / "fixtures" / "smoke.yaml").read_text() + "name: other\n")
    assert main(["show", str(path)]) == 2
    assert "duplicate key 'name'" in one_error_line(capsys)


# 16. Deadlines


def test_a_deadline_value_that_is_not_seconds_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("TESTBED_TIMEOUT_VERIFY_S", "soon")
    with pytest.raises(Exception, match="TESTBED_TIMEOUT_VERIFY_S"):
        deadlines.seconds("verify")


def test_the_ansible_run_has_a_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configure run past its deadline is stopped with one line naming it."""
    inventory = local_inventory(tmp_path, pause_s=60)
    monkeypatch.setenv("TESTBED_TIMEOUT_ANSIBLE_S", "3")
    start = time.monotonic()
    with pytest.raises(Exception, match=r"ansible timed out after 3s.*TESTBED_TIMEOUT_ANSIBLE_S"):
        run_playbook(tmp_path / "play.yml", [str(inventory)], tmp_path / "runner", 1)
    assert time.monotonic() - start < 30


def test_verify_has_a_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks that hang are stopped at the verify deadline with one line naming it."""
    from testbeds import paths, verify

    suite = tmp_path / "checks" / "slow"
    suite.mkdir(parents=True)
    (tmp_path / "checks" / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(60)\n")
    monkeypatch.setattr(paths, "CHECKS_DIR", tmp_path / "checks")
    monkeypatch.setenv("TESTBED_TIMEOUT_VERIFY_S", "3")
    with pytest.raises(deadlines.DeadlineExpired, match="verify timed out after 3s"):
        verify.run_checks(["slow"], tmp_path / "nodes.json", tmp_path / "report.xml")


def test_debootstrap_has_a_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from testbeds.targets.local import image

    fake = tmp_path / "debootstrap"
    fake.write_text("#!/bin/sh\nsleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(image.shutil, "which", lambda name: str(fake))
    monkeypatch.setenv("TESTBED_TIMEOUT_DEBOOTSTRAP_S", "2")
    with pytest.raises(deadlines.DeadlineExpired, match="debootstrap timed out after 2s"):
        image._build("localhost/x:y", "http://deb.example/debian", "bookworm", tmp_path, print)


def test_pulumi_operations_have_a_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pulumi operation past its deadline is cancelled and named in one line."""

    class SlowStack:
        cancelled = False

        def up(self, on_output: Any) -> None:
            time.sleep(5)

        def cancel(self) -> None:
            SlowStack.cancelled = True

    monkeypatch.setenv("TESTBED_TIMEOUT_PULUMI_S", "1")
    with pytest.raises(deadlines.DeadlineExpired, match="pulumi timed out after 1s"):
        run_stack_operation(SlowStack(), "up", print)
    assert SlowStack.cancelled


def test_errors_name_the_field_without_echoing_escapes(tmp_path: Path, capsys: Any) -> None:
    """ANSI escapes and newlines from input are shown escaped, on one line."""
    path = write_definition(tmp_path, description="x")
    data = yaml.safe_load(path.read_text())
    data["entry"] = "\x1b[2Jnode\nx"
    path.write_text(yaml.safe_dump(data))
    assert main(["show", str(path)]) == 2
    line = one_error_line(capsys)
    assert "\x1b" not in line and "\\x1b" in line


def test_deploy_down_refuses_nothing_outside(isolated_state: Path) -> None:
    """deploy.down never reaches past the state root (the CLI is not the only caller)."""
    with pytest.raises(Exception, match="not valid"):
        deploy.down("..")
    with pytest.raises(DefinitionError):
        resolve("smoke-never", instance="bad name")


def test_check_workers_follow_the_nodes_and_refuse_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One check process per node plus one for the testbed-wide checks, at most four;
    TESTBED_CHECK_WORKERS overrides, and anything but a whole number is refused."""
    from testbeds.errors import TestbedError
    from testbeds.nodes import ProvisionedNode, write_nodes
    from testbeds.verify import check_workers

    nodes_file = tmp_path / "nodes.json"
    write_nodes(nodes_file, [ProvisionedNode(f"n{i}", "g", ("common",), "", "") for i in range(2)])
    monkeypatch.delenv("TESTBED_CHECK_WORKERS", raising=False)
    assert check_workers(nodes_file) == 3
    write_nodes(nodes_file, [ProvisionedNode(f"n{i}", "g", ("common",), "", "") for i in range(9)])
    assert check_workers(nodes_file) == 4
    assert check_workers(tmp_path / "absent.json") == 1
    monkeypatch.setenv("TESTBED_CHECK_WORKERS", "1")
    assert check_workers(nodes_file) == 1
    for bad in ("0", "-1", "two", "$(id)"):
        monkeypatch.setenv("TESTBED_CHECK_WORKERS", bad)
        with pytest.raises(TestbedError, match="TESTBED_CHECK_WORKERS"):
            check_workers(nodes_file)
