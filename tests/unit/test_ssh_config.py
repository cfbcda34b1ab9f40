"""The instance's ssh_config as OpenSSH itself reads it (`ssh -G`, which resolves a host's
effective options and connects nowhere): strict host keys from the instance's own file, the
instance's key only, shared connections to the nodes but not to the bastion, one socket
prefix per instance, and values that could add an option refused."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from testbeds.nodes import ProvisionedNode
from testbeds.sshconfig import Bastion, Login, quoted, reached_through, write_ssh_config
from testbeds.state import StateDir

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh")


def effective(config: Path, host: str) -> dict[str, str]:
    """What ssh would use for `host`: its `-G` output, option names in lower case."""
    shown = subprocess.run(
        ["ssh", "-G", "-F", str(config), host],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    options = {}
    for line in shown.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), value)
    return options


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.fixture
def login(tmp_path: Path) -> Login:
    return Login("debian", tmp_path / "key file", tmp_path / "known hosts")


def test_a_node_behind_the_bastion_is_reached_strictly_with_the_instance_key(
    tmp_path: Path, home: Path, login: Login
) -> None:
    state = StateDir("sshcfg", root=tmp_path / "state")
    config = write_ssh_config(
        state, {"node1": ("10.0.0.5", 2222)}, login, Bastion("b.example", "gate", 2200)
    )
    node = effective(config, "node1")
    assert (node["hostname"], node["port"], node["user"]) == ("10.0.0.5", "2222", "debian")
    assert node["proxyjump"] == "wp5-bastion"
    assert node["identityfile"] == str(login.private_key)
    assert node["identitiesonly"] == "yes"
    assert node["userknownhostsfile"] == str(login.known_hosts)
    assert node["stricthostkeychecking"] == "true"
    assert node["connecttimeout"] == "20"
    assert node["controlmaster"] == "auto"
    assert node["controlpersist"] == "120"
    assert node["controlpath"].startswith(f"{home}/.ssh/wp5-")
    gate = effective(config, "wp5-bastion")
    assert (gate["hostname"], gate["port"], gate["user"]) == ("b.example", "2200", "gate")
    assert gate["controlmaster"] == "false"  # first jumps at once must not race for it
    assert "proxyjump" not in gate
    assert gate["identityfile"] == str(login.private_key)
    assert gate["userknownhostsfile"] == str(login.known_hosts)
    assert gate["stricthostkeychecking"] == "true"
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert config == state.path / "ssh_config"


def test_without_a_bastion_nodes_are_reached_directly(
    tmp_path: Path, home: Path, login: Login
) -> None:
    state = StateDir("direct", root=tmp_path / "state")
    config = write_ssh_config(
        state, {"a": ("10.0.0.1", 22), "b": ("10.0.0.2", 22)}, login, None, tmp_path / "other"
    )
    assert config == tmp_path / "other"
    for name, address in (("a", "10.0.0.1"), ("b", "10.0.0.2")):
        node = effective(config, name)
        assert node["hostname"] == address and "proxyjump" not in node
    assert "wp5-bastion" not in config.read_text()


def test_each_instance_shares_connections_only_among_its_own_nodes(
    tmp_path: Path, home: Path, login: Login
) -> None:
    def socket_of(instance: str, node: str) -> str:
        config = write_ssh_config(
            StateDir(instance, root=tmp_path / "state"),
            {"n1": ("10.0.0.1", 22), "n2": ("10.0.0.2", 22)},
            login,
            None,
        )
        return effective(config, node)["controlpath"]

    # ssh expands %C per connection (host, port, user): the instance prefix comes before it.
    prefix_one = socket_of("one", "n1").rsplit("-", 1)[0]
    assert socket_of("one", "n2").rsplit("-", 1)[0] == prefix_one
    assert socket_of("two", "n1").rsplit("-", 1)[0] != prefix_one
    assert len(Path(prefix_one).name) == len("wp5-") + 10


@pytest.mark.parametrize("value", ['x"y', "a\nProxyCommand sh", "tab\there", ""])
def test_a_value_that_could_end_its_quote_or_line_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="refusing to write .* into ssh_config"):
        quoted(value)


def test_a_plain_value_is_written_in_double_quotes() -> None:
    assert quoted("/srv/state dir/key") == '"/srv/state dir/key"'


def test_reached_through_points_ansible_and_testinfra_at_the_host_block(tmp_path: Path) -> None:
    node = ProvisionedNode(
        name="login1",
        group="login",
        roles=("common",),
        address="10.0.0.9",
        testinfra_uri="",
        ansible_vars={"ansible_host": "10.0.0.9", "kept": 1},
    )
    config = tmp_path / "ssh_config"
    as_debian = reached_through(config, node, "debian")
    assert as_debian.ansible_vars == {
        "ansible_host": "login1",
        "ansible_user": "debian",
        "ansible_ssh_common_args": f"-F {config}",
        "ansible_become": True,
        "kept": 1,
    }
    assert as_debian.testinfra_uri == f"safe-ssh://login1?ssh_config={config}"
    as_root = reached_through(config, node, "root")
    assert "ansible_become" not in as_root.ansible_vars
    assert as_root.ansible_vars["ansible_user"] == "root"
