"""Which credential each service of a testbed accepts, by the role that runs it (`testbed
show`). Every role is either here or in NO_SERVICE, so a new role must say which."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceIdentity:
    service: str
    accepts: str


S = ServiceIdentity
SSH_WITH_DIRECTORY = S(
    "sshd", "directory accounts by the SSH keys the directory holds; root by the control key"
)
SSH_LOCAL = S("sshd", "local research accounts by their own key pair; root by the control key")
SSH_ROOT_ONLY = S("sshd", "root by the control node's key; no user logs in")
HUB_WITH_PASSWORDS = S(
    "JupyterHub (HTTPS)",
    "passwords over PAM (SSSD: the directory where there is one) of the definition's "
    "projects' members (its users where it has no projects)",
)
HUB_WITH_ISSUER = S(
    "JupyterHub (HTTPS)",
    "users the token issuer logged in (OAuth authorization code, directory password given "
    "to the issuer only), if members of the definition's projects",
)
XROOTD_OPEN = S("XRootD root:// and davs://", "anyone on the testbed's network; not exposed")
XROOTD_WITH_TOKENS = S(
    "XRootD root:// (ztn) and davs://",
    "WLCG-profile tokens the token issuer signed for this endpoint's audience, the "
    "operation and path within their storage.* scopes; anonymous requests refused",
)
RUCIO_OPEN = S("Rucio REST API (HTTPS)", "Rucio accounts (userpass, generated passwords)")
RUCIO_WITH_TOKENS = S(
    "Rucio REST API (HTTPS)",
    "Rucio accounts (userpass, generated passwords); its transfers and deletions present "
    "storage tokens got with its issuer client's generated secret",
)
# The web front ends (nginx auth_pam) of the pipelines services.
DIRECTORY_PASSWORD_PER_REQUEST = (
    "directory accounts by password, checked through PAM and SSSD on every request"
)

ROLE_IDENTITIES: dict[str, tuple[ServiceIdentity, ...]] = {
    "directory": (
        S(
            "slapd (ldaps:// 636)",
            "nodes (and Slurm, where it runs) as a read-only service account (generated "
            "password); users bind only to prove their password; root over the local socket; "
            "no anonymous binds",
        ),
    ),
    "directory_client": (SSH_WITH_DIRECTORY,),
    "token_issuer": (
        S(
            "OIDC token issuer (HTTPS)",
            "directory accounts by password (LDAP bind), for a registered client "
            "(authorization code) or a terminal (device flow), granted only the scopes "
            "their directory entry holds; clients by their generated secret (client "
            "credentials); no built-in administrator",
        ),
    ),
    "users": (SSH_LOCAL,),
    "munge": (S("munge", "credentials made with the instance's shared key"),),
    "nfs_server": (S("NFS", "the testbed's nodes by address, root squashed"),),
    "slurm_dbd": (
        S("slurmdbd", "munge"),
        S("MariaDB (loopback)", "slurmdbd with a generated password"),
    ),
    "slurm_controller": (
        S("slurmctld", "munge; with a directory, a job needs its user's project association"),
    ),
    "slurm_compute": (S("slurmd", "munge"),),
    "node_exporter": (S("node exporter", "none: testbed-internal, not exposed"),),
    "prometheus": (S("Prometheus", "none: testbed-internal, not exposed"),),
    "redis": (S("Redis (TLS)", "an ACL user per research account, generated password"),),
    "jupyterhub": (HUB_WITH_PASSWORDS,),
    "jupyterhub_singleuser": (S("notebook servers", "the hub's OAuth tokens"),),
    "analysis": (
        S("Dask clusters", "TLS certificates made per cluster (plaintext refused)"),
        S("Spark clusters", "a secret made per cluster, traffic encrypted"),
    ),
    "interlink": (S("interLink API (HTTPS)", "a generated bearer token"),),
    "xrootd": (XROOTD_OPEN,),
    "postgresql": (S("PostgreSQL (loopback)", "a generated password per database owner"),),
    "rucio": (RUCIO_OPEN,),
    "git_server": (
        S(
            "git (HTTPS)",
            f"anyone fetches; push by {DIRECTORY_PASSWORD_PER_REQUEST}, "
            "a member of the repository's project",
        ),
    ),
    "container_registry": (
        S(
            "OCI registry (HTTPS)",
            f"pull by {DIRECTORY_PASSWORD_PER_REQUEST}; push and delete only by a member of "
            "the namespace's project, or by a running CI job of that project (a credential "
            "minted for the job)",
        ),
    ),
    "mlflow": (
        S(
            "MLflow (HTTPS)",
            f"{DIRECTORY_PASSWORD_PER_REQUEST}, or a running CI job's own credential; "
            "/health answers anyone",
        ),
    ),
    "buildbot_master": (S("Buildbot worker port", "a generated password per worker"),),
}

# Roles that run nothing anyone authenticates to: clients, libraries, node setup.
NO_SERVICE = frozenset(
    {
        "common",
        "testbed_ca",
        "nfs_client",
        "lmod",
        "openmpi",
        "infiniband",
        "nvidia_gpu",
        "fpga",
        "slurm",  # slurm.conf and the client tools, shared by the Slurm roles
        "slurm_login",
        "hpc_gateway",  # a command the gateway's CI worker runs; it listens on nothing
        "project_access",  # the check nginx's PAM runs for git, the registry and MLflow
        "charliecloud",
        "redis_client",
        "data_client",
        "rucio_client",
        "git_client",
        "buildbot_worker",
    }
)

# What a service accepts instead where the testbed has a token issuer.
WITH_ISSUER = {
    HUB_WITH_PASSWORDS: HUB_WITH_ISSUER,
    XROOTD_OPEN: XROOTD_WITH_TOKENS,
    RUCIO_OPEN: RUCIO_WITH_TOKENS,
}


def service_identities(roles: Iterable[str], testbed_roles: set[str]) -> list[ServiceIdentity]:
    """What the services of a node with `roles` accept, in a testbed whose nodes have
    `testbed_roles` (a directory's SSH keys replace the local accounts' own; a token issuer
    logs users in to the hub in place of its password form, and makes the storage
    endpoints take its tokens only)."""
    found: list[ServiceIdentity] = []
    for role in roles:
        if role == "users" and "directory" in testbed_roles:
            continue
        for identity in ROLE_IDENTITIES.get(role, ()):
            if "token_issuer" in testbed_roles:
                identity = WITH_ISSUER.get(identity, identity)
            if identity not in found:
                found.append(identity)
    if not any(identity.service == "sshd" for identity in found):
        found.insert(0, SSH_ROOT_ONLY)  # every node runs sshd, for the control node
    return found
