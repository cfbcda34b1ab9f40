"""TLS inside a testbed's namespaces: a certificate authority of the instance's own and the
server certificates it signs, made by the Pulumi TLS provider (the private keys live only in
the stack's encrypted state and in the Secrets below, never in the program's output).

Each server gets a `kubernetes.io/tls` Secret `<name>-tls` for its Service's names; clients
trust the authority through the ConfigMap `testbed-ca` (key `ca.crt`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

CA_CONFIG_MAP = "testbed-ca"
CA_KEY = "ca.crt"
# A year; `pulumi up` renews certificates in their last month (early_renewal_hours).
VALID_HOURS = 24 * 365
RENEW_HOURS = 24 * 30


@dataclass(frozen=True)
class Authority:
    """The instance's certificate authority."""

    key: tls.PrivateKey
    certificate: tls.SelfSignedCert


def authority(name: str, instance: str, opts: pulumi.ResourceOptions) -> Authority:
    key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    certificate = tls.SelfSignedCert(
        f"{name}-ca",
        private_key_pem=key.private_key_pem,
        is_ca_certificate=True,
        subject={"common_name": f"{instance} testbed CA", "organization": "wp5-testbeds"},
        validity_period_hours=VALID_HOURS,
        early_renewal_hours=RENEW_HOURS,
        allowed_uses=["cert_signing", "crl_signing"],
        opts=opts,
    )
    return Authority(key, certificate)


def service_names(service: str, namespace: pulumi.Input[str]) -> pulumi.Output[list[str]]:
    """The names a Service answers to inside the cluster."""
    return pulumi.Output.from_input(namespace).apply(
        lambda ns: [
            service,
            f"{service}.{ns}",
            f"{service}.{ns}.svc",
            f"{service}.{ns}.svc.cluster.local",
        ]
    )


def server_certificate(
    name: str,
    ca: Authority,
    service: str,
    metadata: dict[str, object],
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """A key and certificate for `service`, signed by the authority, in the Secret named in
    `metadata` (with the authority's certificate beside them as `ca.crt`)."""
    key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    request = tls.CertRequest(
        f"{name}-request",
        private_key_pem=key.private_key_pem,
        subject={"common_name": service, "organization": "wp5-testbeds"},
        dns_names=service_names(service, namespace),
        opts=opts,
    )
    signed = tls.LocallySignedCert(
        f"{name}-cert",
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca.key.private_key_pem,
        ca_cert_pem=ca.certificate.cert_pem,
        validity_period_hours=VALID_HOURS,
        early_renewal_hours=RENEW_HOURS,
        allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
        opts=opts,
    )
    return k8s.core.v1.Secret(
        name,
        metadata=metadata,
        type="kubernetes.io/tls",
        string_data={
            "tls.crt": signed.cert_pem,
            # The provider marks the private key secret in the stack's state.
            "tls.key": key.private_key_pem,
            CA_KEY: ca.certificate.cert_pem,
        },
        opts=opts,
    )
