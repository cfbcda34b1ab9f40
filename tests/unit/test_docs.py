"""The documentation: a short README with the two set-up commands, the guides as a MkDocs
site that builds with no broken link, and each role's variables page generated from its
`meta/argument_specs.yml` (the committed pages are what the generator writes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import role_docs

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250


def test_the_readme_is_short_and_gives_the_two_set_up_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert readme.count("```bash\napt-get update && apt-get install -y") == 2
    assert "<!-- test-command -->" in readme and "<!-- /test-command -->" in readme


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link, a missing page or a bad anchor fails it."""
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "roles" / "munge" / "index.html").is_file()


def test_each_roles_variables_page_is_generated_from_its_argument_specs() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, text in role_docs.expected().items()
        if not path.is_file() or path.read_text() != text
    ]
    assert stale == [], f"run `python -m tests.role_docs`: {stale}"
    pages = {p.stem for p in role_docs.PAGES.glob("*.md")} - {"index"}
    assert pages == set(role_docs.roles())
