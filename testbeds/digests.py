"""Content digests of the files a run reads, for the caches that must change when any of
them does (baked images, the no-op `up`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


def tree_digest(root: Path, leave_out: Callable[[Path], bool] | None = None) -> str:
    """SHA-256 over every file under root, names and contents, in a stable order (an absent
    root has the digest of nothing); `leave_out` is asked of each file's path relative to
    root."""
    digest = hashlib.sha256()
    if root.is_file():
        digest.update(root.read_bytes())
        return digest.hexdigest()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not (leave_out and leave_out(p.relative_to(root)))
    )
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
