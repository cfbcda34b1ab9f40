"""Cloud nodes' host keys read from their console logs (testbeds/targets/cloud/console_keys.py):
the control node learns each node's own key through the cloud's API, never by handing the
node a private key in user data."""

from __future__ import annotations

import pytest

from testbeds.targets.cloud.console_keys import (
    BEGIN,
    END,
    HostKeysNotFound,
    host_keys_in_console,
    wait_for_host_keys,
)

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirstBootKey+/="
REBOOTED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISecondBootKey"


def console(*keys: str) -> str:
    """What cloud-init prints (cc_keys_to_console), amid the rest of the boot."""
    block = "\n".join(f"{key} root@node" for key in keys)
    return f"[  OK  ] Started ssh.service\nci-info: no authorized keys\n{BEGIN}\n{block}\n{END}\n"


def test_the_keys_of_the_last_block_are_read_without_comments() -> None:
    text = console("ecdsa-sha2-nistp256 AAAAE2VjZHNh", ED25519) + console(REBOOTED)
    assert host_keys_in_console(text) == [REBOOTED]
    assert host_keys_in_console(console(ED25519)) == [ED25519]


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{BEGIN}\n{ED25519}\n",  # still being printed
        f"{BEGIN}\nssh-ed25519 AAAA$(reboot)\n{END}\n",
        "ssh-ed25519 AAAAoutsideTheBlock\n",
    ],
)
def test_nothing_outside_a_whole_block_or_not_a_key_is_taken(text: str) -> None:
    assert host_keys_in_console(text) == []


class Consoles:
    """A cloud whose servers print their keys after a number of polls each."""

    def __init__(self, after: dict[str, int]) -> None:
        self.after = after
        self.polls: dict[str, int] = {}

    def get_server_console_output(self, server: str) -> dict[str, str]:
        self.polls[server] = self.polls.get(server, 0) + 1
        if self.polls[server] > self.after[server]:
            return {"output": console(f"ssh-ed25519 AAAA{server}")}
        return {"output": "booting"}


def test_waits_until_every_node_printed_its_key() -> None:
    consoles = Consoles({"s1": 0, "s2": 2})
    now = [0.0]
    keys = wait_for_host_keys(
        consoles,
        {"login": "s1", "cpu1": "s2"},
        timeout_s=60,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert keys == {"login": "ssh-ed25519 AAAAs1", "cpu1": "ssh-ed25519 AAAAs2"}
    assert consoles.polls == {"s1": 1, "s2": 3}


def test_a_node_that_never_prints_its_key_is_named_in_one_line() -> None:
    now = [0.0]
    with pytest.raises(HostKeysNotFound, match=r"^no SSH host key on the console of cpu1 after"):
        wait_for_host_keys(
            Consoles({"s1": 0, "s2": 10**6}),
            {"login": "s1", "cpu1": "s2"},
            timeout_s=30,
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
        )
