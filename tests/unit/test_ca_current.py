"""The testbed CA's shortcut for runs with nothing to issue: a host certificate counts as
current only when it is exactly what the role would issue."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbeds.ansible_plugins.lookup.testbed_ca_current import host_certificate_current

NOW = datetime.datetime.now(datetime.UTC)


def write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def issue(ca_dir: Path, days: int = 90, names: tuple[str, ...] = ("cpu1",)) -> None:
    (ca_dir / "hosts").mkdir(parents=True, exist_ok=True)
    ca_key = write_key(ca_dir / "ca.key")
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wp5-testbeds CA t")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    (ca_dir / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key = write_key(ca_dir / "hosts" / "cpu1.key")
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("10.0.0.5"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cpu1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (ca_dir / "hosts" / "cpu1.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_what_the_role_issued_is_current(tmp_path: Path) -> None:
    issue(tmp_path)
    assert host_certificate_current(str(tmp_path), "cpu1", ["cpu1"], ["10.0.0.5"])


def test_anything_else_is_issued_again(tmp_path: Path) -> None:
    assert not host_certificate_current(str(tmp_path), "cpu1", ["cpu1"], ["10.0.0.5"])
    issue(tmp_path)
    assert not host_certificate_current(str(tmp_path), "cpu1", ["cpu1", "cpu1.site"], ["10.0.0.5"])
    assert not host_certificate_current(str(tmp_path), "cpu1", ["cpu1"], ["10.0.0.6"])
    assert not host_certificate_current(str(tmp_path), "cpu2", ["cpu2"], ["10.0.0.5"])
    issue(tmp_path, days=3)
    assert not host_certificate_current(str(tmp_path), "cpu1", ["cpu1"], ["10.0.0.5"])


def test_a_certificate_from_another_ca_is_issued_again(tmp_path: Path) -> None:
    issue(tmp_path)
    other = tmp_path / "other"
    issue(other)
    (tmp_path / "ca.crt").write_bytes((other / "ca.crt").read_bytes())
    assert not host_certificate_current(str(tmp_path), "cpu1", ["cpu1"], ["10.0.0.5"])


def test_a_key_that_does_not_match_is_issued_again(tmp_path: Path) -> None:
    issue(tmp_path)
    write_key(tmp_path / "hosts" / "cpu1.key")
    assert not host_certificate_current(str(tmp_path), "cpu1", ["cpu1"], ["10.0.0.5"])
