"""Development certificates: a CA, a server cert for localhost, and a client cert.

For trying TLS and mutual TLS in a minute; not for production (10-year validity in a dev
CA whose key sits next to the certificates).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.fileio import write_private

VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class DevCertFiles:
    ca: Path
    ca_key: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "patina-serve dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    *,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier | None,
    hosts: list[str] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )
    if usage is None:  # the CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_dev_certs(directory: Path, *, hosts: list[str] | None = None) -> DevCertFiles:
    """Write ca.pem, ca-key.pem, server.pem, server-key.pem, client.pem, client-key.pem."""
    hosts = hosts or ["localhost", "127.0.0.1", "::1"]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca_name = _name("patina-serve dev CA")
    ca = _issue(
        subject="patina-serve dev CA", key=ca_key, issuer=ca_name, issuer_key=ca_key, usage=None
    )
    server = _issue(
        subject=hosts[0],
        key=server_key,
        issuer=ca_name,
        issuer_key=ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        hosts=hosts,
    )
    client = _issue(
        subject="patina-client",
        key=client_key,
        issuer=ca_name,
        issuer_key=ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    files = DevCertFiles(
        ca=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        server=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    pem = serialization.Encoding.PEM
    # Certificates are public but written the same careful way; keys are 0600.
    write_private(files.ca, ca.public_bytes(pem), mode=0o644)
    write_private(files.server, server.public_bytes(pem), mode=0o644)
    write_private(files.client, client.public_bytes(pem), mode=0o644)
    write_private(files.ca_key, _pem_key(ca_key))
    write_private(files.server_key, _pem_key(server_key))
    write_private(files.client_key, _pem_key(client_key))
    return files
