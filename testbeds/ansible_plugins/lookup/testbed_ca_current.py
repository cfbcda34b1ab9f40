"""Ansible lookup `testbed_ca_current`: whether a node's host certificate, as the testbed_ca
role would issue it, is already on the control node and good, so a run with nothing to do
skips issuing. It reads the files in-process: one lookup instead of a handful of crypto
modules per node."""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any

from ansible.plugins.lookup import LookupBase
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

DOCUMENTATION = r"""
name: testbed_ca_current
short_description: Whether a node's host certificate need not be issued again
description:
  - True when the CA and the node's key and certificate exist, the certificate is signed by
    the CA and matches the key, names exactly the wanted DNS names and addresses, and both
    certificates stay valid for longer than min_days.
options:
  _terms:
    description: The CA folder (testbed_ca_dir) and the node's name.
    required: true
  names:
    description: DNS names the certificate must name.
    type: list
  addresses:
    description: IP addresses the certificate must name.
    type: list
  min_days:
    description: Days of validity that must remain.
    type: int
    default: 7
"""


def _load(path: str) -> x509.Certificate:
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def host_certificate_current(
    ca_dir: str, host: str, names: list[str], addresses: list[str], min_days: int = 7
) -> bool:
    paths = {
        "ca_cert": os.path.join(ca_dir, "ca.crt"),
        "ca_key": os.path.join(ca_dir, "ca.key"),
        "cert": os.path.join(ca_dir, "hosts", f"{host}.crt"),
        "key": os.path.join(ca_dir, "hosts", f"{host}.key"),
    }
    if not all(os.path.isfile(p) for p in paths.values()):
        return False
    try:
        ca, cert = _load(paths["ca_cert"]), _load(paths["cert"])
        with open(paths["key"], "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        ca_key, hash_algorithm = ca.public_key(), cert.signature_hash_algorithm
        if hash_algorithm is None or not isinstance(ca_key, ec.EllipticCurvePublicKey):
            return False
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_algorithm))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False  # unreadable, or not what the role issues: issue again
    horizon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=min_days)
    return (
        cert.issuer == ca.subject
        and key.public_key() == cert.public_key()
        and set(san.get_values_for_type(x509.DNSName)) == set(names)
        and set(san.get_values_for_type(x509.IPAddress))
        == {ipaddress.ip_address(a) for a in addresses}
        and set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        and ca.not_valid_after_utc > horizon
        and cert.not_valid_after_utc > horizon
    )


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[bool]:
        self.set_options(var_options=variables, direct=kwargs)
        ca_dir, host = (str(t) for t in terms)
        return [
            host_certificate_current(
                ca_dir,
                host,
                [str(n) for n in self.get_option("names") or []],
                [str(a) for a in self.get_option("addresses") or []],
                int(self.get_option("min_days")),
            )
        ]
