"""cloud-init user data for cloud nodes, rendered from a jinja2 template."""

from __future__ import annotations

from testbeds.model.plan import PlannedNode
from testbeds.templating import templates


def user_data(node: PlannedNode, instance: str, ssh_user: str) -> str:
    """First-boot setup: host name, a host key the node makes and prints on its console,
    Python for Ansible, and nothing a role should own. Holds no secret."""
    return templates.get_template("cloud-init.yaml.j2").render(
        node=node, instance=instance, ssh_user=ssh_user
    )
