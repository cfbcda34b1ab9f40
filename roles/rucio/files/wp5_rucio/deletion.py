"""The reaper's pause after a round with little to delete, made as short as its sleep.

Rucio's reaper pauses deletion on a storage element for 120 s once a round there found
fewer replicas to delete than it takes at a time: it keeps a key in its memcached region
and reads it back with a 120 s expiry, which spares a site with millions of replicas a
query a second. In a testbed nearly every round is such a round, so a rule deleted just
after one kept its replicas for up to two minutes (69 s in one data-movement check). Here
the pause lasts the reaper's sleep between rounds. (Without a reachable cache, Rucio keeps
no pause at all.)
"""

from __future__ import annotations

from typing import Any

PAUSE_KEY_PREFIX = "pause_deletion_"


def shorten_pause(region: Any, seconds: int) -> None:
    """Read the pause keys of `region` (a dogpile cache region) with this expiry."""
    read = region.get

    def get(key: Any, expiration_time: int | None = None, **kwargs: Any) -> Any:
        if isinstance(key, str) and key.startswith(PAUSE_KEY_PREFIX):
            expiration_time = seconds
        return read(key, expiration_time=expiration_time, **kwargs)

    region.get = get


def install(seconds: int) -> None:
    """Shorten the pause of Rucio's reaper (before its console script runs)."""
    from rucio.daemons.reaper import reaper

    shorten_pause(reaper.REGION, seconds)
