#!/usr/bin/python3
"""Give the directories XRootD makes under its storage a fixed mode, so that the nodes that
mount the storage read the files in place.

XRootD (5.5) makes a directory asked for over WebDAV (MKCOL, which carries no mode) 0700,
with any parents it makes on the way. It pipes this program the namespace path of each
directory it makes (ofs.notify mkdir); the program sets the mode on that directory and on
every directory above it up to the storage root, where XRootD owns them. It runs as
XRootD's own user, so it can change nothing XRootD does not own.

Usage: xrootd-share-dirs STORAGE_ROOT MODE (octal), paths on standard input, one a line.
"""

from __future__ import annotations

import os
import stat
import sys


def share(root: str, namespace_path: str, mode: int) -> None:
    target = os.path.realpath(os.path.join(root, namespace_path.lstrip("/")))
    if not target.startswith(root + os.sep):
        return
    current = root
    for part in os.path.relpath(target, root).split(os.sep):
        current = os.path.join(current, part)
        try:
            found = os.lstat(current)
        except OSError:
            return
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
            return
        if stat.S_IMODE(found.st_mode) != mode:
            os.chmod(current, mode)


def main() -> int:
    root, mode = os.path.realpath(sys.argv[1]), int(sys.argv[2], 8)
    for line in sys.stdin:
        try:
            share(root, line.strip(), mode)
        except OSError as exc:  # one path's failure must not stop the next
            print(f"xrootd-share-dirs: {line.strip()}: {exc.strerror}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
