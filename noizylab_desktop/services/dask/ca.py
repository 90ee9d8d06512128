"""The cluster's certificate authority: a P-256 key made for one cluster, held only in the scheduler node's memory.

It signs a certificate for the scheduler and, from certificate signing requests sent over the grid's mTLS channel,
for each worker and client: the requester keeps its own key. Every certificate names the member's node ID (CN), its
role (OU) and the cluster (O), and lives no longer than the CA (``DaskSettings.cert_lifetime_h``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from noizylab_desktop.core.errors import DaskError

ROLES = ("scheduler", "worker", "client")
_SKEW = dt.timedelta(minutes=5)  # members' clocks may lag the scheduler's a little


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def csr_for(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A signing request for ``key`` (its subject is ignored: the CA names the certificate itself)."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "noizylab-dask")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    expires_at: float


class ClusterCA:
    """A fresh CA for one cluster; ``issue`` signs members' requests until it expires."""

    def __init__(self, lifetime_h: float) -> None:
        self.cluster_id = secrets.token_hex(6)
        self._key = new_key()
        now = dt.datetime.now(dt.UTC)
        self.not_after = now + dt.timedelta(hours=lifetime_h)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"noizylab dask CA {self.cluster_id}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.cluster_id),
            ]
        )
        self._name = name
        public = self._key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
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
                critical=True,
            )  # fmt: skip
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def expires_at(self) -> float:
        return self.not_after.timestamp()

    def issue(self, csr_pem: bytes, node_id: str, role: str) -> Issued:
        """A certificate for the key in ``csr_pem``, naming ``node_id`` in ``role``; a bad request is refused."""
        if role not in ROLES:
            raise DaskError(f"no such role {role!r}: use one of {', '.join(ROLES)}")
        try:
            request = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise DaskError("the certificate request is not a PEM signing request") from exc
        if not request.is_signature_valid:
            raise DaskError("the certificate request's signature does not verify")
        public = request.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise DaskError("the certificate request must be for an ECDSA P-256 key")
        return self._sign(public, node_id, role)

    def issue_own(self, node_id: str, role: str) -> tuple[Issued, bytes]:
        """A key made here and its certificate (for the scheduler, which runs on this node)."""
        key = new_key()
        return self._sign(key.public_key(), node_id, role), key_pem(key)

    def _sign(self, public: ec.EllipticCurvePublicKey, node_id: str, role: str) -> Issued:
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, node_id[:64]),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.cluster_id),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), self.expires_at)
