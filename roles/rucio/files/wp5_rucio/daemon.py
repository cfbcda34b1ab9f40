"""Start a Rucio daemon with the gfal2 transfer tool registered.

    python -m wp5_rucio.daemon rucio-conveyor-submitter --sleep-time 5

runs the named console script of the same installation, as Rucio ships it, after adding
``gfal2`` to Rucio's transfer tools. The poller then reads every submitted gfal2 transfer
on each round, and the reaper gets the testbed's storage tokens for its deletions (see
``wp5_rucio.tokens``) and pauses a storage element with nothing to delete for its own sleep
time, not two minutes (``wp5_rucio.deletion``).
"""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path

from wp5_rucio import deletion, tokens, transfertool

DEFAULT_SLEEP_S = 60  # Rucio's reaper's own default


def sleep_time(args: list[str]) -> int:
    """The daemon's --sleep-time (Rucio's default where it is not given)."""
    for index, arg in enumerate(args):
        if arg == "--sleep-time" and index + 1 < len(args):
            return int(args[index + 1])
        if arg.startswith("--sleep-time="):
            return int(arg.split("=", 1)[1])
    return DEFAULT_SLEEP_S


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m wp5_rucio.daemon RUCIO-DAEMON [ARGS...]")
    name = sys.argv[1]
    transfertool.register()
    if name == "rucio-conveyor-poller":
        transfertool.poll_every_round()
    if name == "rucio-reaper":
        tokens.install()
        deletion.install(sleep_time(sys.argv[2:]))
    script = Path(sys.executable).with_name(name)
    if not script.is_file():
        found = shutil.which(name)
        if found is None:
            sys.exit(f"no Rucio daemon script named {name!r}")
        script = Path(found)
    sys.argv = [str(script), *sys.argv[2:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
