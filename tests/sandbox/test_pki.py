from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.pki import (
    ADMIN,
    SCHEDULER,
    apiserver_serving_names,
    create_pki,
    issue_client_cert,
    node_identity,
)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_certificate_names_loopback_and_the_kubernetes_service(tmp_path: Path) -> None:
    pki = create_pki(tmp_path, apiserver_serving_names("10.96.0.1"))
    cert = load(pki.serving_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.96.0.1"),
    }
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(load(pki.ca_cert))


def test_admin_certificate_is_in_system_masters_and_signed_by_the_ca(tmp_path: Path) -> None:
    pki = create_pki(tmp_path, apiserver_serving_names("10.96.0.1"))
    cert = load(pki.client_cert(ADMIN))
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    cert.verify_directly_issued_by(load(pki.ca_cert))
    assert load(pki.client_cert(SCHEDULER)).subject.rfc4514_string() == "CN=system:kube-scheduler"


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    pki = create_pki(tmp_path, apiserver_serving_names("10.96.0.1"))
    for key in (pki.ca_key, pki.serving_key, pki.client_key(ADMIN), pki.sa_private_key):
        assert key.stat().st_mode & 0o077 == 0, key


def test_service_account_keys_are_an_rsa_pair(tmp_path: Path) -> None:
    pki = create_pki(tmp_path, apiserver_serving_names("10.96.0.1"))
    private = serialization.load_pem_private_key(pki.sa_private_key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pki.sa_public_key.read_bytes())
    assert isinstance(private, rsa.RSAPrivateKey)
    assert isinstance(public, rsa.RSAPublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()


def test_node_certificates_can_be_issued_later_for_the_node_authorizer(tmp_path: Path) -> None:
    pki = create_pki(tmp_path, apiserver_serving_names("10.96.0.1"))
    cert_path, _ = issue_client_cert(pki, node_identity("sim-node-0"))
    assert load(cert_path).subject.rfc4514_string() == "CN=system:node:sim-node-0,O=system:nodes"
