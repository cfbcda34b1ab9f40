"""The jinja2 environment of the package's own templates (testbeds/templates/)."""

from __future__ import annotations

import jinja2

from testbeds import paths

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(paths.TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # YAML and cloud-config, not HTML
)
