"""What the tool knows of a role, read from the role itself (`roles/<role>/meta/testbed.yml`)
rather than kept in tables here: the services it runs and what each accepts, whether its
install step may be baked into an image, whether it belongs to the identity layer composed
testbeds share. A role without that file, or with a field out of shape, is refused naming
the file and the field."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from testbeds import paths
from testbeds.errors import DefinitionError, field_path

FACTS_FILE = Path("meta") / "testbed.yml"


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    accepts: str
    # What it accepts instead where the testbed has a token issuer.
    accepts_with_token_issuer: str | None = None
    # Not listed on a node where the testbed has this role (its service replaces this one).
    unless_role: str | None = None


class RoleFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    services: tuple[Service, ...] = ()
    # False for a role whose install step places per-node credentials.
    baked: bool = True
    # The directory and token issuer: one of each for every testbed composed together.
    identity_layer: bool = False
    # Variables naming folders on a shared filesystem that the role's `<role>_shared` step
    # fills with what no instance makes its own (an installed environment, a generated
    # dataset): the local target bakes each into a read-only image (see
    # `targets.local.shared_content`).
    baked_shared: tuple[str, ...] = ()


@cache
def role_facts(role: str, roles_dir: Path | None = None) -> RoleFacts:
    path = (roles_dir or paths.roles_dir()) / role / FACTS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DefinitionError(path, "", f"role {role} has no facts file") from None
    try:
        return RoleFacts.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise DefinitionError(path, field_path(first["loc"], data), first["msg"]) from None


def roles_with(predicate: str, roles_dir: Path | None = None) -> frozenset[str]:
    """The roles whose facts have `predicate` true (`baked`, `identity_layer`)."""
    base = roles_dir or paths.roles_dir()
    names = sorted(p.name for p in base.iterdir() if (p / "tasks" / "main.yml").is_file())
    return frozenset(n for n in names if getattr(role_facts(n, roles_dir), predicate))
