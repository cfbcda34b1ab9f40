"""Accounts a check adds to the testbed's directory after `up` (with the directory tool on
the directory node), and removes again: shared by the suites that check who gets in."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any


def directory_host(testbed: Any) -> Any:
    return testbed.host(testbed.group("directory")[0])


@dataclass
class NewUser:
    name: str
    uid: int
    key: str  # private key path on the directory node
    password_file: str  # on the directory node, mode 0600


class Newcomers:
    """Accounts a check adds with the directory tool, each with a key pair and a password
    made on the directory node; `close` removes them and the homes the tool made."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self.folder = controller.check_output("mktemp -d /root/identity-check.XXXXXX")
        self.made: list[NewUser] = []

    def add(self, projects: list[str]) -> NewUser:
        name = f"idcheck{secrets.token_hex(3)}"
        key, password = f"{self.folder}/{name}-key", f"{self.folder}/{name}-password"
        self.controller.check_output(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
        # URL-safe, so that it can stand in a git credential store's URL as it is.
        self.controller.check_output(
            f"umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '._' > {password}"
        )
        options = " ".join(f"--project {p}" for p in projects)
        # Checks of a composed testbed add users side by side: a free uid picked at random,
        # and another one if a check running beside this one took it first.
        for _ in range(3):
            listed = json.loads(self.controller.check_output("testbed-directory show"))
            taken = {p["uid"] for p in listed["people"]} | {u.uid for u in self.made}
            uid = secrets.choice([u for u in range(2100, 3000) if u not in taken])
            added = self.controller.run(
                f"testbed-directory add-user {name} --uid {uid} {options} "
                f"--ssh-key-file {key}.pub --password-file {password}"
            )
            if added.rc == 0 or "is in use by" not in added.stderr:
                break
        assert added.rc == 0, added.stderr
        user = NewUser(name, uid, key, password)
        self.made.append(user)
        return user

    def close(self) -> None:
        for user in self.made:
            self.controller.run(f"testbed-directory remove-user {user.name}")
            self.controller.run(f"rm -rf /home/{user.name}")
        self.controller.run(f"rm -rf {self.folder}")

    def password(self, user: NewUser) -> str:
        """The user's password, read from the directory node into this process only."""
        return str(self.controller.file(user.password_file).content_string).strip()
