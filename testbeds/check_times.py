"""Each check's time in the last `verify`, which orders the lanes (longest first, see
`testbeds.checks.lanes`): the instance's own last report, or, for an instance that has
none yet (a CI job's instance is new on every run), the times of the testbed's last verify
on this machine, kept under the cache folder (names and seconds only, no output)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from testbeds import paths
from testbeds.state import write_json

CheckKey = tuple[str, str]  # (classname, name) as a JUnit report has them


def from_report(report: Path) -> dict[CheckKey, float]:
    """Each check's time in a JUnit report; nothing when there is no readable report."""
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return {}
    return {
        (case.get("classname", ""), case.get("name", "")): float(case.get("time", 0) or 0)
        for case in root.iter("testcase")
    }


def kept_file(testbed: str) -> Path:
    return paths.cache_root() / "check-times" / f"{testbed}.json"


def keep(report: Path, testbed: str) -> None:
    """Keep the report's check times as the testbed's (nothing when it has no checks)."""
    seconds = from_report(report)
    if seconds:
        rows = [[classname, name, s] for (classname, name), s in sorted(seconds.items())]
        write_json(kept_file(testbed), rows)


def read_kept(path: Path) -> dict[CheckKey, float]:
    """Times kept by `keep`; nothing when the file is missing or not of that shape."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {(str(c), str(n)): float(s) for c, n, s in rows}
    except (OSError, ValueError, TypeError):
        return {}
