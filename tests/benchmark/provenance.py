"""The line every measured table starts with: when, on which commit and on what kind of
machine it was measured (docs/measured/ holds the tables, written by the benchmarks)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def provenance(command: str) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    memory_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return (
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')}, "
        f"commit {commit or 'unknown'}, on a machine with {os.cpu_count()} CPUs and "
        f"{memory_kb / 2**20:.0f} GB of memory. Compare rows with each other, not with other "
        "machines."
    )
