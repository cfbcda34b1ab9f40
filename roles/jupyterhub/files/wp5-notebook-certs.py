#!/usr/bin/python3
"""Store a notebook server's internal TLS key and certificates in the calling user's home.

The hub runs this as the user (sudo -u USER) with the three PEM texts as JSON on standard
input, and reads back the folder it wrote. The home is on the shared filesystem the compute
nodes mount, where the hub's root is squashed; only the user (and root) can read the key.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path

NAMES = ("key", "cert", "ca")


def write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    # O_EXCL and O_NOFOLLOW: never through a link or a file someone else left there.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(path)


def main() -> int:
    files = json.load(sys.stdin)
    if not isinstance(files, dict) or not all(isinstance(files.get(n), str) for n in NAMES):
        print("wp5-notebook-certs: expected a JSON object of key, cert and ca", file=sys.stderr)
        return 2
    os.umask(0o077)
    folder = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".jupyterhub" / "internal-ssl"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.is_symlink() or not folder.is_dir():
        print(f"wp5-notebook-certs: {folder} is not a folder", file=sys.stderr)
        return 1
    folder.chmod(0o700)
    for name in NAMES:
        write_private(folder / f"{name}.pem", files[name])
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
