"""Ansible lookup `testbed_secret`: the one way roles get a generated password or token.

Every such secret of an instance is a file `<testbed_secrets_dir>/<name>` on the control
node, named `<service>-<account>-password` or `<service>-token`, made on first use (letters
and digits, mode 0600) and read back ever after, so every role that shares a secret (the
registry's CI account and the Buildbot master, say) gets the same value."""

from __future__ import annotations

import os
import re
import secrets
import string
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: testbed_secret
short_description: A generated secret of the testbed instance, made on first use
description:
  - Returns the content of <testbed_secrets_dir>/<name> on the control node, creating it
    (mode 0600, letters and digits) when it does not exist yet.
options:
  _terms:
    description: Secret names, such as rucio-db-password or interlink-token.
    required: true
  length:
    description: How many characters a new secret has.
    type: int
    default: 32
"""

NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*-(password|token)$")
ALPHABET = string.ascii_letters + string.digits


def read_or_create(folder: str, name: str, length: int) -> str:
    if not NAME.match(name):
        raise AnsibleError(f"testbed_secret: {name!r} is not <service>-<account>-password|token")
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        draft = f"{path}.{os.getpid()}.new"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(secrets.choice(ALPHABET) for _ in range(length)))
        try:
            os.link(draft, path)  # atomic: a parallel fork's secret, if first, stays
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[str], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        folder = (variables or {}).get("testbed_secrets_dir")
        if not folder:
            raise AnsibleError("testbed_secret: testbed_secrets_dir is not set")
        return [read_or_create(str(folder), name, self.get_option("length")) for name in terms]
