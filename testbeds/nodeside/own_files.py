"""Files a job could have tampered with, read safely: a job's folder is the job's to fill
with links, folders or fifos in place of the files the runner reads back. Standard library
only."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


def open_regular(path: Path) -> BinaryIO | None:
    """`path` opened for reading if it is a regular file, never through a link (nor
    blocking on a fifo); None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
