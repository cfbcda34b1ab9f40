"""What the cloud targets read from a site profile, checked before anything is created."""

from __future__ import annotations

from pathlib import Path

from testbeds.errors import DefinitionError
from testbeds.model.loader import missing_site_section, site_dir
from testbeds.model.plan import Plan
from testbeds.model.schema import NodeGroup
from testbeds.targets.kubernetes.site import KubernetesSite
from testbeds.targets.openstack.site import OpenStackSite


def openstack_site(plan: Plan) -> OpenStackSite:
    """The plan's OpenStack site values, or an error naming the file and field."""
    site = plan.site.openstack
    if site is None:
        raise missing_site_section(plan.site.name, "openstack")
    for group in plan.definition.node_groups:
        if group.traits.gpus and group.name not in site.flavors and not site.gpu_flavor:
            raise DefinitionError(
                site_dir(plan.site.name) / "site.yml",
                "openstack.gpu_flavor",
                f"missing: node group {group.name!r} has GPUs and no flavor of its own",
            )
    return site


def flavor_for(group: NodeGroup, site: OpenStackSite) -> str:
    if group.name in site.flavors:
        return site.flavors[group.name]
    if group.traits.gpus and site.gpu_flavor:
        return site.gpu_flavor
    return site.flavor


def kubernetes_site(plan: Plan) -> KubernetesSite:
    """The plan's Kubernetes site values, or an error naming the file and field."""
    site = plan.site.kubernetes
    if site is None:
        raise missing_site_section(plan.site.name, "kubernetes")
    roles = plan.roles
    # (what is missing, the role that needs it, the field that says it, why it is needed)
    required = (
        (site.interlink, "slurm_login", "kubernetes.interlink.url",
         f"{plan.name} offloads pods to its Slurm cluster through interLink, so the site "
         "must say where the login node's interLink endpoint is"),
        (site.jupyterhub_oauth, "jupyterhub", "kubernetes.jupyterhub_oauth",
         f"{plan.name}'s JupyterHub logs users in only through the site's OAuth2/OIDC issuer "
         "(the chart's default lets anyone in)"),
        (site.storage_token_issuer, "xrootd", "kubernetes.storage_token_issuer",
         f"{plan.name}'s XRootD endpoints grant nothing without a storage token, so the site "
         "must name the issuer whose tokens they accept"),
    )  # fmt: skip
    for value, role, field, why in required:
        if value is None and role in roles:
            raise DefinitionError(site_dir(plan.site.name) / "site.yml", field, f"missing: {why}")
    return site


def oauth_client_secret_file(plan: Plan) -> Path | None:
    """The file with JupyterHub's OAuth client secret, where the plan has a hub."""
    site = kubernetes_site(plan)
    if site.jupyterhub_oauth is None or not any("jupyterhub" in n.roles for n in plan.nodes):
        return None
    path = Path(site.jupyterhub_oauth.client_secret_file).expanduser()
    return path if path.is_absolute() else site_dir(plan.site.name) / path
