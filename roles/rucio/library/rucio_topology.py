#!/usr/bin/python
"""Ansible module: make Rucio's RSEs, protocols, distances, limits and scopes match a spec."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rucio_topology
short_description: Make Rucio's storage elements match the testbed definition
description:
  - Creates missing RSEs, RSE attributes, protocols, account limits, distances between
    every pair of RSEs and scopes, through Rucio's REST API as the root account; changes
    nothing that already matches. Runs with the Python of the Rucio installation.
options:
  config:
    description: rucio.cfg with a [client] section for the root account.
    type: path
    required: true
  rses:
    description: RSEs, each with name, attributes (dict), protocols (list of dicts as
      Rucio's add_protocol takes them) and deterministic (default true; kept as made).
    type: list
    elements: dict
    required: true
  distance:
    description: Distance set between every ordered pair of RSEs.
    type: int
    default: 1
  account:
    description: Account that gets the limits and the scopes.
    type: str
    default: root
  account_limit_bytes:
    description: Local limit of the account on every RSE.
    type: int
    required: true
  scopes:
    description: Scopes of the account.
    type: list
    elements: str
    default: []
  users:
    description: User accounts, each with name, email and the OIDC identity (the token
      issuer's "SUB=<subject>, ISS=<issuer URL>") a user's own token authenticates as; each
      gets its scope (`scope`, default user.<name>) and the user limit on every RSE. An
      account's `type` is USER unless given (SERVICE for a client's). Accounts not listed
      are left alone.
    type: list
    elements: dict
    default: []
  user_limit_bytes:
    description: Local limit of each user account on every RSE.
    type: int
    default: 0
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def _same(current: object, wanted: object) -> bool:
    return str(current).lower() == str(wanted).lower()


def converge(client: Any, params: dict[str, Any], errors: Any) -> list[str]:
    changes: list[str] = []
    names = [rse["name"] for rse in params["rses"]]
    for rse in params["rses"]:
        name = rse["name"]
        try:
            client.get_rse(name)
        except errors.RSENotFound:
            client.add_rse(name, deterministic=rse.get("deterministic", True))
            changes.append(f"rse {name}")
        current_attrs = client.list_rse_attributes(name)
        for key, value in sorted(rse.get("attributes", {}).items()):
            if key not in current_attrs or not _same(current_attrs[key], value):
                client.add_rse_attribute(name, key, value)
                changes.append(f"rse {name} attribute {key}")
        try:
            current_protocols = client.get_protocols(name)
        except errors.RSEProtocolNotSupported:
            current_protocols = []
        have = {(p["scheme"], p["hostname"], p["port"]): p for p in current_protocols}
        for protocol in rse.get("protocols", []):
            key = (protocol["scheme"], protocol["hostname"], protocol["port"])
            if key not in have:
                client.add_protocol(name, protocol)
                changes.append(f"rse {name} protocol {protocol['scheme']}")
            elif _priorities(have[key].get("domains", {})) != _priorities(protocol["domains"]):
                client.update_protocols(
                    name,
                    protocol["scheme"],
                    data={"domains": protocol["domains"]},
                    hostname=protocol["hostname"],
                    port=protocol["port"],
                )
                changes.append(f"rse {name} protocol {protocol['scheme']} priorities")
        limits = client.get_local_account_limit(params["account"], name) or {}
        if limits.get(name) != params["account_limit_bytes"]:
            client.set_local_account_limit(params["account"], name, params["account_limit_bytes"])
            changes.append(f"rse {name} limit")
    for source in names:
        for destination in names:
            if source == destination:
                continue
            current = client.get_distance(source, destination)
            if not current:
                client.add_distance(source, destination, {"distance": params["distance"]})
                changes.append(f"distance {source}->{destination}")
            elif current[0].get("distance") != params["distance"]:
                client.update_distance(source, destination, {"distance": params["distance"]})
                changes.append(f"distance {source}->{destination}")
    existing_scopes = set(client.list_scopes())
    for scope in params["scopes"]:
        if scope not in existing_scopes:
            client.add_scope(params["account"], scope)
            changes.append(f"scope {scope}")
    for user in params["users"]:
        changes += _user(client, errors, user, names, params["user_limit_bytes"], existing_scopes)
    return changes


def _user(
    client: Any,
    errors: Any,
    user: dict[str, Any],
    rses: list[str],
    limit_bytes: int,
    existing_scopes: set[str],
) -> list[str]:
    """One user's account, identity, scope and limits, as wanted."""
    changes: list[str] = []
    name = user["name"]
    try:
        client.get_account(name)
    except errors.AccountNotFound:
        client.add_account(name, user.get("type", "USER"), user["email"])
        changes.append(f"account {name}")
    identities = {(i["identity"], i["type"]) for i in client.list_identities(name)}
    if (user["identity"], "OIDC") not in identities:
        client.add_identity(name, user["identity"], "OIDC", user["email"], default=True)
        changes.append(f"account {name} identity")
    scope = user.get("scope") or f"user.{name}"
    if scope not in existing_scopes:
        client.add_scope(name, scope)
        changes.append(f"scope {scope}")
    for rse in rses:
        limits = client.get_local_account_limit(name, rse) or {}
        if limits.get(rse) != limit_bytes:
            client.set_local_account_limit(name, rse, limit_bytes)
            changes.append(f"account {name} limit at {rse}")
    return changes


def _priorities(domains: dict[str, Any]) -> dict[tuple[str, str], int]:
    """An operation's priority per domain; an operation not offered is None (or absent),
    which is not 0: Rucio takes 0 as a protocol's first choice."""
    return {
        (domain, operation): priority
        for domain, operations in domains.items()
        for operation, priority in (operations or {}).items()
        if priority is not None
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "path", "required": True},
            "rses": {"type": "list", "elements": "dict", "required": True},
            "distance": {"type": "int", "default": 1},
            "account": {"type": "str", "default": "root"},
            "account_limit_bytes": {"type": "int", "required": True},
            "scopes": {"type": "list", "elements": "str", "default": []},
            "users": {"type": "list", "elements": "dict", "default": []},
            "user_limit_bytes": {"type": "int", "default": 0},
        },
        supports_check_mode=False,
    )
    os.environ["RUCIO_CONFIG"] = module.params["config"]
    try:
        from rucio.client import Client
        from rucio.common import exception as errors
    except ImportError as exc:
        module.fail_json(msg=f"run this module with the Python of the Rucio installation: {exc}")
    try:
        changes = converge(Client(), module.params, errors)
    except Exception as exc:  # noqa: BLE001 - every Rucio error is reported the same way
        module.fail_json(msg=f"{type(exc).__name__}: {exc}")
    module.exit_json(changed=bool(changes), changes=changes)


if __name__ == "__main__":
    main()
