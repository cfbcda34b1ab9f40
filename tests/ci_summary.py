"""`.ci/run`'s last word: what the tests recorded (the first up's phases, say), the counts
of a pytest run from its JUnit report, the deselected tests with their reasons, and a
non-zero exit on any failure or skip.

python -m tests.ci_summary REPORT.xml [DESELECTED.json]
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    skipped: int

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.skipped == 0 and self.passed > 0


def counts(report: Path) -> Counts:
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return Counts(passed=tests - failed - skipped, failed=failed, skipped=skipped)


def recorded(report: Path) -> list[tuple[str, str, str]]:
    """What tests recorded (pytest's record_property): test, name, value. Read here rather
    than by `testbeds.verify.report_measurements`: `.ci/run` runs this with the system
    Python, which lacks the package's dependencies."""
    return [
        (str(case.get("name", "")), str(prop.get("name", "")), str(prop.get("value", "")))
        for case in ET.parse(report).getroot().iter("testcase")
        for prop in case.iter("property")
    ]


def main(argv: list[str]) -> int:
    if not argv or not Path(argv[0]).is_file():
        print("ci: no JUnit report was written: the test command did not run pytest")
        return 1
    result = counts(Path(argv[0]))
    deselected: dict[str, int] = {}
    if len(argv) > 1 and Path(argv[1]).is_file():
        deselected = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    for test, name, value in recorded(Path(argv[0])):
        print(f"ci: {test}: {name} = {value}")
    for reason, count in sorted(deselected.items()):
        print(f"ci: {count} deselected: {reason}")
    if result.skipped:
        print(f"ci: {result.skipped} test(s) skipped outside the allow-list (tests/ci_policy.py)")
    if result.passed == 0:
        print("ci: no test passed")
    print(f"ci: {sum(deselected.values())} deselected in all")
    # The last line in the plain form CI reads: "N passed, N failed, N skipped".
    print(f"ci: {result.passed} passed, {result.failed} failed, {result.skipped} skipped")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
