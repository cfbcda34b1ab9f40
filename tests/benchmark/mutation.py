"""Mutation testing of the modules that keep users safe, as a table per module.

    mutmut run                                   # pyproject.toml [tool.mutmut]: what and how
    python -m tests.benchmark.mutation [--save counts.json] [--before counts.json]
                                       [--write docs/measured/mutation.md]

Reads mutmut's results (`mutmut results --all true`) and prints, per module, how many
mutants the unit tests killed, how many survived, and how many no unit test reaches (code
that only runs against live services, such as the directory tool's LDAP calls: the
end-to-end checks exercise it, mutation testing cannot). Every survivor must be listed in
tests/benchmark/mutation_harmless.yaml with the reason it is harmless (an equivalent
program, a message's wording, an unreachable guard); one that is not is printed and the
command exits 1. `--save` keeps the counts, `--before` adds an earlier run's beside them.
Not part of the test suite: the run takes about an hour on two cores."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

HARMLESS = Path(__file__).with_name("mutation_harmless.yaml")
# What mutmut calls each outcome, and the column it is counted in.
OUTCOMES = {
    "killed": "killed",
    "survived": "survived",
    "no tests": "not reached",
    "timeout": "killed",  # the mutant hung the tests: a test noticed
    "segfault": "killed",
    "suspicious": "survived",
    "skipped": "not reached",
    "caught by type check": "killed",
    "not checked": "not run",  # `mutmut run` stopped before it
}
COLUMNS = ("killed", "survived", "not reached", "not run")


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str
    outcome: str


def module_of(name: str) -> str:
    """`testbeds.state.xǁStateDirǁremove__mutmut_1` -> `testbeds.state`."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def read_results() -> list[Mutant]:
    shown = subprocess.run(
        ["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    mutants = []
    for line in shown.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        if status not in OUTCOMES:
            raise SystemExit(f"mutmut reports {status!r} for {name}")
        mutants.append(Mutant(name, module_of(name), OUTCOMES[status]))
    return mutants


def counts(mutants: list[Mutant]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for mutant in mutants:
        table.setdefault(mutant.module, Counter())[mutant.outcome] += 1
    return {module: {c: table[module][c] for c in COLUMNS} for module in sorted(table)}


def markdown(now: dict[str, dict[str, int]], before: dict[str, dict[str, int]] | None) -> str:
    head = ["module", *COLUMNS]
    if before:
        head += ["survived before", "not reached before"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for module, row in now.items():
        cells = [f"`{module}`", *(str(row[c]) for c in COLUMNS)]
        if before:
            old = before.get(module, {})
            cells += [str(old.get("survived", "-")), str(old.get("not reached", "-"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="keep the counts as JSON")
    parser.add_argument("--before", type=Path, help="counts of an earlier run, shown beside")
    parser.add_argument("--write", type=Path, help="keep the table in this Markdown file")
    args = parser.parse_args()
    mutants = read_results()
    now = counts(mutants)
    before = json.loads(args.before.read_text()) if args.before else None
    reasons: dict[str, str] = yaml.safe_load(HARMLESS.read_text()) or {}
    survivors = [m for m in mutants if m.outcome == "survived"]
    unexplained = [m.name for m in survivors if m.name not in reasons]
    table = markdown(now, before)
    print(table)
    if args.save:
        args.save.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
    if args.write:
        listed = "\n".join(
            f"- `{m.name}`: {reasons.get(m.name, '**no reason given**')}" for m in survivors
        )
        args.write.write_text(
            "# Mutation testing\n\n"
            f"Written by `python -m tests.benchmark.mutation --write` on "
            f"{time.strftime('%Y-%m-%d')} from `mutmut run` (pyproject.toml's "
            "`[tool.mutmut]`: the modules, and the unit tests that judge them). Killed: a "
            "unit test failed with the mutant; survived: every test passed (each is listed "
            "below with its reason); not reached: no unit test runs that "
            "code (it talks to a live service; the end-to-end checks run it).\n\n"
            f"{table}\n\n## Survivors, each with why it is harmless (or why no unit test "
            f"kills it)\n\n{listed or 'None.'}\n"
        )
    if unexplained:
        print(f"{len(unexplained)} survivor(s) with no reason in {HARMLESS.name}:", file=sys.stderr)
        for name in unexplained:
            print(f"  {name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
