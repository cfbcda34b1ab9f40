"""cloud-init user data for cloud nodes, rendered from a jinja2 template."""

from __future__ import annotations

import jinja2

from testbeds import paths
from testbeds.plan import PlannedNode

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(paths.TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def user_data(node: PlannedNode, instance: str, ssh_user: str) -> str:
    """First-boot setup: host name, Python for Ansible, and nothing a role should own."""
    return _env.get_template("cloud-init.yaml.j2").render(
        node=node, instance=instance, ssh_user=ssh_user
    )
