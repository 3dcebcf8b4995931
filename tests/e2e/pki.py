"""A throwaway PKI for mTLS tests: one CA, a server certificate for 127.0.0.1/localhost, and client
certificates with SPIFFE URI SANs (or none), written as PEM files. Deterministic names, fresh keys."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class CertFiles:
    cert: str
    key: str

    def der_sha256(self) -> bytes:
        """SHA-256 of the certificate's DER encoding (what RFC 8705 `x5t#S256` and Envoy's
        `sha256_peer_certificate_digest` are computed over)."""
        return cert_sha256(self.cert)


def cert_sha256(path: str | Path) -> bytes:
    """SHA-256 of the DER encoding of the (first) certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def client_context(ca: str, client: CertFiles | None = None) -> ssl.SSLContext:
    """A TLS client context trusting `ca` (for the server certificate), presenting `client` if given."""
    ctx = ssl.create_default_context(cafile=ca)
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    # Certificates must be valid "now" for Envoy; a wide window keeps tests independent of the clock.
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))


class Pki:
    """Creates `ca.pem` in `directory` and issues leaf certificates signed by it. Two `Pki`s in two
    directories are two unrelated CAs (one trusted by Envoy, one not)."""

    def __init__(self, directory: Path | str, ca_name: str = "meshguard test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
        builder = _validity(
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
        )
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        self._ca_cert = builder.sign(self._ca_key, hashes.SHA256())
        self.ca = str(self.dir / "ca.pem")
        Path(self.ca).write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        uris: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = False,
    ) -> CertFiles:
        """A leaf certificate `<name>.pem` / `<name>.key` with the given SANs."""
        key = _key()
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = _validity(
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        files = CertFiles(cert=str(self.dir / f"{name}.pem"), key=str(self.dir / f"{name}.key"))
        Path(files.cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, Path(files.key))
        return files

    def server(self) -> CertFiles:
        """A server certificate for 127.0.0.1 and localhost."""
        return self.issue("server", dns=("localhost",), ips=("127.0.0.1",), server=True)
