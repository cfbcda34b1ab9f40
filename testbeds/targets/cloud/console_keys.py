"""SSH host keys a cloud node made itself, read from its console log: cloud-init prints the
public keys between two marker lines on the console, which only the cloud's API (with the
project's credentials) serves. No private key travels in user data, which any process on
the node can read from the metadata service."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Protocol

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
# The key types the nodes make (cloud-init's ssh_genkeytypes), as known_hosts spells them.
KEY = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/]+={0,3}")


class HostKeysNotFound(Exception):
    """A node's console did not show its host keys in time."""


class ConsoleLogs(Protocol):
    """What the cloud serves of a server's console (openstacksdk's compute proxy does)."""

    def get_server_console_output(self, server: str) -> dict[str, str]: ...


def host_keys_in_console(text: str) -> list[str]:
    """The public host keys of the last block cloud-init printed (a rebooted node prints
    again; the newest block is the current one), without comments."""
    blocks = text.split(BEGIN)
    if len(blocks) < 2 or END not in blocks[-1]:
        return []
    body = blocks[-1].split(END, 1)[0]
    keys = (" ".join(line.split()[:2]) for line in body.splitlines())
    return [key for key in keys if KEY.fullmatch(key)]


def wait_for_host_keys(
    consoles: ConsoleLogs,
    servers: Mapping[str, str],
    timeout_s: float = 600,
    interval_s: float = 5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Each node's ed25519 host key (node name -> key), from its server's console log, once
    cloud-init has printed it; `servers` maps node names to server ids."""
    found: dict[str, str] = {}
    deadline = clock() + timeout_s
    while True:
        for node, server in servers.items():
            if node in found:
                continue
            output = consoles.get_server_console_output(server).get("output") or ""
            ed25519 = [k for k in host_keys_in_console(output) if k.startswith("ssh-ed25519 ")]
            if ed25519:
                found[node] = ed25519[-1]
        missing = sorted(set(servers) - set(found))
        if not missing:
            return found
        if clock() >= deadline:
            raise HostKeysNotFound(
                f"no SSH host key on the console of {', '.join(missing)} after {timeout_s:.0f} s"
                " (cloud-init prints it once the node has booted)"
            )
        sleep(interval_s)


def from_cloud(cloud: str) -> Callable[[dict[str, str]], dict[str, str]]:
    """Host keys read through the named cloud's compute API (clouds.yaml, as the preflight)."""

    def read(servers: dict[str, str]) -> dict[str, str]:
        import openstack

        return wait_for_host_keys(openstack.connect(cloud=cloud).compute, servers)

    return read
