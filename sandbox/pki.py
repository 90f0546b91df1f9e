"""The sandbox's PKI: one CA, a serving certificate for the loopback components, client certificates,
and the service-account signing key pair. Written into one directory with the ``cryptography`` package.

Layout (all PEM)::

    ca.crt ca.key                   the cluster CA (also signs CSRs through the controller manager)
    serving.crt serving.key         kube-apiserver, kube-scheduler and kube-controller-manager serving
    <client>.crt <client>.key       one pair per :class:`ClientIdentity` (admin, kube-scheduler, ...)
    sa.key sa.pub                   RSA key pair that signs and verifies service-account tokens

Certificates use ECDSA P-256 keys (fast to generate); the service-account key is RSA 2048.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.atomic import write_atomic

VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(hours=1)

CertificateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate authenticates as: user ``common_name`` in groups ``organizations``."""

    file_stem: str
    common_name: str
    organizations: tuple[str, ...] = ()


ADMIN = ClientIdentity("admin", "kubernetes-admin", ("system:masters",))
SCHEDULER = ClientIdentity("kube-scheduler", "system:kube-scheduler")
CONTROLLER_MANAGER = ClientIdentity("kube-controller-manager", "system:kube-controller-manager")
FRONT_PROXY = ClientIdentity("front-proxy-client", "front-proxy-client")
"""The API server's identity towards aggregated API servers (request-header authentication)."""
KUBELET_CLIENT = ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
"""The API server's identity towards kubelets (logs, exec, port-forward on real nodes)."""
DEFAULT_CLIENTS = (ADMIN, SCHEDULER, CONTROLLER_MANAGER, FRONT_PROXY, KUBELET_CLIENT)


def node_identity(node_name: str) -> ClientIdentity:
    """The identity a kubelet on ``node_name`` has (Node authorizer + NodeRestriction apply to it)."""
    return ClientIdentity(f"node-{node_name}", f"system:node:{node_name}", ("system:nodes",))


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "serving.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "serving.key"

    @property
    def sa_private_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_public_key(self) -> Path:
        return self.directory / "sa.pub"

    def client_cert(self, identity: ClientIdentity) -> Path:
        return self.directory / f"{identity.file_stem}.crt"

    def client_key(self, identity: ClientIdentity) -> Path:
        return self.directory / f"{identity.file_stem}.key"


@dataclass(frozen=True)
class ServingNames:
    """Subject alternative names of the serving certificate."""

    ips: tuple[str, ...] = ("127.0.0.1",)
    dns: tuple[str, ...] = ("localhost",)


def apiserver_serving_names(service_ip: str) -> ServingNames:
    """Loopback plus the in-cluster names of the ``kubernetes`` Service (its ClusterIP is ``service_ip``)."""
    return ServingNames(
        ips=("127.0.0.1", service_ip),
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
    )


def create_pki(directory: Path, serving: ServingNames, clients: Sequence[ClientIdentity] = DEFAULT_CLIENTS) -> Pki:
    """Create a fresh CA and everything signed by it in ``directory`` (existing files are replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key)
    _write(pki.ca_key, _private_pem(ca_key), private=True)
    _write(pki.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _issue(pki.serving_cert, pki.serving_key, ca_cert, ca_key, _serving_builder(serving))
    for identity in clients:
        issue_client_cert(pki, identity)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki.sa_private_key, _private_pem(sa_key), private=True)
    public = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(pki.sa_public_key, public)
    return pki


def issue_client_cert(pki: Pki, identity: ClientIdentity) -> tuple[Path, Path]:
    """Sign a client certificate for ``identity`` with the PKI's CA; returns (cert, key) paths."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key} is not an ECDSA key; recreate the sandbox PKI")
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in identity.organizations]
    names.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    cert, key = pki.client_cert(identity), pki.client_key(identity)
    _issue(cert, key, ca_cert, ca_key, builder)
    return cert, key


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dra-sandbox-ca")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _serving_builder(names: ServingNames) -> x509.CertificateBuilder:
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in names.ips]
    sans += [x509.DNSName(d) for d in names.dns]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dra-sandbox-serving")]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )


def _issue(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    builder: x509.CertificateBuilder,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        builder.issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _private_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _private_pem(key: CertificateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    write_atomic(path, data, 0o600 if private else 0o644)
