"""Each check's time in the last `verify`, which orders the lanes (longest first, see
`testbeds.checks.lanes`): the instance's own last report, and for the checks it lacks (an
instance new on every run, as a CI job's; a last verify of some checks only) the times
kept from the testbed's verifies on this machine, under the cache folder (names and
seconds only, no output)."""

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
    """Keep the report's check times as the testbed's, over those kept before: a verify of
    some checks only (`testbed verify I -- -k ...`) updates theirs and forgets no other."""
    seconds = from_report(report)
    if seconds:
        merged = {**read_kept(kept_file(testbed)), **seconds}
        rows = [[classname, name, s] for (classname, name), s in sorted(merged.items())]
        write_json(kept_file(testbed), rows)


def read_kept(path: Path) -> dict[CheckKey, float]:
    """Times kept by `keep`; nothing when the file is missing or not of that shape."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {(str(c), str(n)): float(s) for c, n, s in rows}
    except (OSError, ValueError, TypeError):
        return {}
