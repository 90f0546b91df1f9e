"""TLS for the webhook: a server context from certificate files, rebuilt when the files change (cert-manager
and kubelet secret updates rotate them in place), and a self-signed CA + serving certificate for development.

The sandbox has its own PKI (``sandbox.pki``) for the cluster's identities; this is one CA and
one serving certificate, nothing else, so the webhook does not depend on sandbox code.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dra_driver.cdi.atomic import write_atomically

VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(hours=1)
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path | None = None  # the CA that signed ``cert``, for a caBundle (self-signed only)


class ServerContexts:
    """The current server SSLContext; rebuilt when the certificate or key file changes."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._stamp: tuple[float, float] | None = None
        self._context: ssl.SSLContext | None = None
        self.current()  # fail at start-up, not at the first request, if the files are unusable

    def _mtimes(self) -> tuple[float, float]:
        return os.stat(self.files.cert).st_mtime, os.stat(self.files.key).st_mtime

    def current(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamp = self._mtimes()
            except OSError:
                if self._context is not None:
                    return self._context  # mid-rotation: keep serving with what we have
                raise
            if self._context is None or stamp != self._stamp:
                try:
                    self._context, self._stamp = self._load(), stamp
                except (OSError, ssl.SSLError):
                    if self._context is None:
                        raise
                    # a certificate and key written one after the other do not match for a moment: retry later
            return self._context

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.files.cert, self.files.key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def self_signed(directory: Path, hosts: Sequence[str] = LOOPBACK_NAMES) -> TlsFiles:
    """Write ``ca.crt``, ``tls.crt`` and ``tls.key`` (serving ``hosts``: IPs or DNS names) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("dra-gpu-webhook-ca"))
        .issuer_name(_name("dra-gpu-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "dra-gpu-webhook"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    write_atomically(files.key, _pem(key), 0o600)
    write_atomically(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    assert files.ca is not None
    write_atomically(files.ca, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return files
