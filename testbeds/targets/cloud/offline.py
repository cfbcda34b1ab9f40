"""The cloud programs run offline, under Pulumi's mocks (no Pulumi CLI, no cloud): every
resource they declare is recorded with its inputs, what a provider would compute is filled
in with recognisable placeholders (`generated-<name>`, a PEM block naming the key), and
secret values are unwrapped to their plain form. Used by `testbed show --manifests` and by
the programs' tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

# How Pulumi marks a secret value on the wire (a dict with this key and the value inside).
SECRET_SIG = "4dabf18193072939515e22adb298388d"

Computed = Callable[[str, dict[str, Any], int], dict[str, Any]]

COMPUTED: dict[str, Computed] = {
    "random:index/randomPassword:RandomPassword": lambda name, _, __: {
        "result": f"generated-{name}",
        "bcryptHash": f"$2a$10$generated-{name}",
    },
    "tls:index/privateKey:PrivateKey": lambda name, _, __: {
        "privateKeyPem": f"-----BEGIN PRIVATE KEY-----\n{name}\n-----END PRIVATE KEY-----\n",
        "publicKeyOpenssh": f"ssh-ed25519 AAAA{name}\n",
        "privateKeyOpenssh": (
            f"-----BEGIN OPENSSH PRIVATE KEY-----\n{name}\n-----END OPENSSH PRIVATE KEY-----\n"
        ),
    },
    "tls:index/selfSignedCert:SelfSignedCert": lambda name, _, __: {
        "certPem": f"-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n"
    },
    "tls:index/certRequest:CertRequest": lambda name, _, __: {
        "certRequestPem": f"-----BEGIN CERTIFICATE REQUEST-----\n{name}\n-----END-----\n"
    },
    "tls:index/locallySignedCert:LocallySignedCert": lambda name, _, __: {
        "certPem": f"-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n"
    },
    "openstack:networking/port:Port": lambda _, __, n: {"allFixedIps": [f"10.42.0.{n + 10}"]},
    "openstack:networking/floatingIp:FloatingIp": lambda _, __, ___: {"address": "192.0.2.10"},
    "openstack:compute/keypair:Keypair": lambda name, inputs, _: {"name": inputs.get("name", name)},
}


def unwrap(value: Any) -> Any:
    """The plain value, with every secret marking removed."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        state = unwrap(dict(args.inputs))
        if args.typ in COMPUTED:
            state.update(COMPUTED[args.typ](args.name, state, len(self.resources)))
        self.resources.append((args.typ, args.name, state))
        return f"{args.name}-id", state

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "openstack:networking/getNetwork:getNetwork":
            return {"id": f"net-{args.args['name']}", "name": args.args["name"]}, []
        if args.token == "openstack:compute/getFlavor:getFlavor":
            return {"id": f"flavor-{args.args['name']}", "name": args.args["name"]}, []
        if args.token == "openstack:images/getImage:getImage":
            return {"id": f"image-{args.args['name']}", "name": args.args["name"]}, []
        return {}, []

    def of_type(self, suffix: str) -> list[tuple[str, dict[str, Any]]]:
        return [(name, state) for typ, name, state in self.resources if typ.endswith(suffix)]
