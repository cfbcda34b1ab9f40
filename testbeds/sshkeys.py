"""SSH material of an instance: the control node's key pair and the nodes' known host keys."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from testbeds.state import StateDir, write_private


def ensure_client_key(state: StateDir) -> tuple[Path, Path]:
    """Private and public key files the control node logs in with, generated once."""
    private = state.secrets_dir / "ssh_ed25519"
    public = state.secrets_dir / "ssh_ed25519.pub"
    if not (private.is_file() and public.is_file()):
        key = Ed25519PrivateKey.generate()
        write_private(
            private,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
        )
        openssh = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH,
            serialization.PublicFormat.OpenSSH,
        )
        public.write_bytes(openssh + f" wp5-testbeds-{state.instance}\n".encode())
        public.chmod(0o644)
    return private, public


def write_known_hosts(state: StateDir, entries: Iterable[tuple[str, str]]) -> Path:
    """Record each node's host key, read over a trusted channel, so SSH can check it strictly."""
    path = state.path / "known_hosts"
    lines = sorted(f"{address} {key.strip()}" for address, key in entries)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ssh_args(state: StateDir) -> str:
    """Extra ssh options: strict checking against the recorded keys, connections reused."""
    return (
        f"-o UserKnownHostsFile={state.path / 'known_hosts'} -o StrictHostKeyChecking=yes "
        "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15"
    )
