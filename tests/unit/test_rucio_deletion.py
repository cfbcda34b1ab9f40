"""The reaper's pause after a round with little to delete lasts its sleep, not Rucio's 120 s
(roles/rucio/files/wp5_rucio/deletion.py, loaded alone: its package needs Rucio)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def deletion_module() -> Any:
    path = REPO / "roles" / "rucio" / "files" / "wp5_rucio" / "deletion.py"
    spec = importlib.util.spec_from_file_location("wp5_rucio_deletion", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Region:
    """What the reaper asks of its dogpile region: get with an expiry."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int | None]] = []

    def get(self, key: str, expiration_time: int | None = None, **_: Any) -> str:
        self.asked.append((key, expiration_time))
        return "value"


def test_the_pause_keys_expire_after_the_reapers_sleep_and_nothing_else_changes() -> None:
    region = Region()
    deletion_module().shorten_pause(region, 2)
    assert region.get("pause_deletion_3f2a", expiration_time=120) == "value"
    region.get("temporary_exclude_3f2a", expiration_time=600)
    region.get("rse_list")
    assert region.asked == [
        ("pause_deletion_3f2a", 2),
        ("temporary_exclude_3f2a", 600),
        ("rse_list", None),
    ]
