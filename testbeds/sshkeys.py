"""SSH material of an instance: the control node's key pair and the nodes' known host keys."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from testbeds.state import StateDir, ensure_private_dir, write_private


def ensure_client_key(state: StateDir) -> tuple[Path, Path]:
    """Private and public key files the control node logs in with, generated once.

    The pair is one unit: both files are written into a fresh 0700 folder that is then
    renamed into place, so a run killed half-way leaves either the whole pair or none."""
    folder = state.secrets_dir / "ssh-client"
    private, public = folder / "id_ed25519", folder / "id_ed25519.pub"
    if private.is_file() and public.is_file():
        return private, public
    ensure_private_dir(state.secrets_dir)
    shutil.rmtree(folder, ignore_errors=True)  # a pair can only be whole or absent
    staging = Path(tempfile.mkdtemp(dir=state.secrets_dir, prefix=".ssh-client-"))
    try:
        key = Ed25519PrivateKey.generate()
        write_private(
            staging / private.name,
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
        write_private(staging / public.name, openssh + f" wp5-testbeds-{state.instance}\n".encode())
        # Mounted read-only into the nodes as authorized_keys, where sshd reads it as root.
        (staging / public.name).chmod(0o644)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return private, public


def write_known_hosts(state: StateDir, entries: Iterable[tuple[str, str]]) -> Path:
    """Record each node's host key, read over a trusted channel, so SSH can check it strictly."""
    path = state.path / "known_hosts"
    lines = sorted(f"{address} {key.strip()}" for address, key in entries)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ssh_args(state: StateDir, known_hosts: Path | None = None) -> str:
    """Extra ssh options: strict checking against the recorded keys (the instance's
    known_hosts unless another file is named), connections reused."""
    return (
        f"-o UserKnownHostsFile={known_hosts or state.path / 'known_hosts'} "
        "-o StrictHostKeyChecking=yes "
        "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15"
    )
