"""A node's identity: an ECDSA P-256 key (gRPC refuses Ed25519 for TLS) with its certificates, and an Ed25519 SSH key.

Created on first start. Both private keys live only in the keychain (through ``Vault``). The node ID is the SHA-256
of the TLS key's public part (``nodeid.py``), so it survives restarts and certificate renewals unchanged.

Two kinds of certificate, both of that one key:

- the **anchor** (``state/node-cert.pem``): self-signed, long-lived, public. Peers keep it as the trust root for
  this node: TLS libraries verify chains to certificates, not to bare keys, and the anchor is the key in the
  shape they take. A home made before IDs named keys keeps its old self-signed certificate as its anchor, so the
  peers that pinned it still verify every certificate it issues (``docs/trust.md``, migration).
- the **leaf**: what TLS shows, issued by the anchor (so signed by the same key) and short-lived
  (``cert_lifetime_s``, 30 days), kept in memory only and renewed at two thirds of its life (``renewal.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from noizylab_desktop.core.config import Paths, Settings, atomic_write
from noizylab_desktop.core.errors import IdentityError, NotRunningError
from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.secrets import KeyringStore, Vault

logger = logging.getLogger(__name__)

TLS_NAME = "noizylab"  # every certificate names this host; peers are told apart by fingerprint, not by name
TLS_KEY = "tls-key"
SSH_KEY = "ssh-key"


@dataclass(frozen=True)
class Leaf:
    """One TLS certificate issued by the anchor: PEM, and when it was issued and ends (epoch seconds)."""

    pem: bytes
    issued_at: float
    expires_at: float
    serial: int = 0  # which leaf of this process this is: 1, 2, ... (0: none issued, the anchor stands in)

    @property
    def renew_at(self) -> float:
        """Two thirds into its life: late enough to renew rarely, early enough that a peer's slow clock is fine."""
        return self.issued_at + (self.expires_at - self.issued_at) * 2 / 3


class _LeafSlot:
    """The current leaf, swapped whole (TLS reads it from gRPC's threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leaf: Leaf | None = None


@dataclass(frozen=True)
class Identity:
    """Everything this node proves itself with. ``cert_pem`` is the anchor (see the module's docstring)."""

    cert_pem: bytes
    key_pem: bytes
    ssh_private_pem: bytes
    ssh_public: str
    _slot: _LeafSlot = field(default_factory=_LeafSlot, compare=False, repr=False)

    # Cached: heartbeats and every metrics sample ask for these, and parsing the certificate each time showed up in
    # an idle node's profile. The fields are frozen, so the answers cannot change.
    @cached_property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(serialization.Encoding.DER)

    @cached_property
    def fingerprint(self) -> bytes:
        return fingerprint(self.cert_der)

    @cached_property
    def node_id(self) -> str:
        return format_id(self.fingerprint)

    @cached_property
    def legacy(self) -> bool:
        """Whether the anchor is a certificate made before IDs named keys (it then also serves the peers that still
        pin certificates: ``client_chain``)."""
        return not _is_ca(x509.load_pem_x509_certificate(self.cert_pem))

    @property
    def leaf(self) -> Leaf | None:
        """The current TLS certificate, once one is issued."""
        return self._slot.leaf

    def renew(self, lifetime_s: float) -> Leaf:
        """Issue a fresh leaf for ``lifetime_s`` seconds and make it current; the old one stays valid until it ends,
        so connections made with it are left to drain."""
        now = time.time()
        pem = issue_leaf(self.cert_pem, self.key_pem, now, lifetime_s)
        with self._slot.lock:
            serial = self._slot.leaf.serial + 1 if self._slot.leaf else 1
            self._slot.leaf = Leaf(pem, now, now + lifetime_s, serial)
            return self._slot.leaf

    def tls_chain(self) -> bytes:
        """The chain this node shows: its current leaf and the anchor (the anchor alone before any leaf)."""
        leaf = self._slot.leaf
        return self.cert_pem if leaf is None else leaf.pem + self.cert_pem

    def client_chain(self, peer_pins_keys: bool) -> bytes:
        """The chain to show a peer as its client: a peer that still pins certificates (it has not upgraded) checks
        ours by its hash, so a migrated node shows it its old certificate, which is also its anchor."""
        return self.cert_pem if self.legacy and not peer_pins_keys else self.tls_chain()

    def sign(self, data: bytes) -> bytes:
        """An ECDSA signature over ``data`` with the TLS key."""
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _unique_subject(name: str) -> x509.Name:
    """``CN=noizylab-<64 random bits>``: a TLS library looks an issuer up among its trust roots by subject and
    takes the first it finds, so two roots with one subject (two machines with one host name) would leave one of
    them refused for ever (``trust.py`` copes with the certificates made before subjects were unique)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{TLS_NAME}-{os.urandom(8).hex()}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name[:64] or TLS_NAME),
        ]
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def make_certificate(name: str) -> tuple[bytes, bytes]:
    """A fresh P-256 key and its anchor, a self-signed certificate that may issue leaves for it, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _unique_subject(name)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * 20))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
        # It issues only leaves of its own key (path length 0); the peers that trust it trust exactly that key.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def issue_leaf(anchor_pem: bytes, key_pem: bytes, now: float, lifetime_s: float) -> bytes:
    """A TLS certificate of the anchor's key, issued (signed) by the anchor, valid ``lifetime_s`` from ``now``.

    Its subject is unique too: leaves are never roots, but a subject equal to its issuer's would make it look
    self-signed. It starts an hour early, so a peer whose clock is a little behind still takes it.
    """
    anchor = x509.load_pem_x509_certificate(anchor_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    org = anchor.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_unique_subject(str(org[0].value) if org else TLS_NAME))
        .issuer_name(anchor.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(hours=1))
        .not_valid_after(start + dt.timedelta(seconds=lifetime_s))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ssh_key() -> tuple[bytes, str]:
    """A fresh Ed25519 key: private in OpenSSH PEM, public as an ``ssh-ed25519 ...`` line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " noizylab"


def _ssh_public_of(private_pem: bytes) -> str:
    key = serialization.load_ssh_private_key(private_pem, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + " noizylab"


def load_or_create(paths: Paths, vault: Vault, name: str) -> Identity:
    """This node's identity, created on first use; blocking (keychain), so call it from a thread."""
    cert_file = paths.cert_file
    key_pem = vault.get(TLS_KEY)
    ssh_pem = vault.get(SSH_KEY)
    if cert_file.exists():
        if key_pem is None:
            raise IdentityError(
                f"the keychain has no private key for {cert_file}: the keychain was reset; "
                "delete that file to give this node a new ID (peers must pair again)"
            )
        cert_pem = cert_file.read_bytes()
        _check_pair(cert_pem, key_pem, cert_file)
    else:
        cert_pem, key_pem = make_certificate(name)
        vault.set(TLS_KEY, key_pem)
        atomic_write(cert_file, cert_pem, mode=0o644)
        logger.info("created node identity %s", node_id_of(cert_pem))
    if ssh_pem is None:
        ssh_pem, _ = make_ssh_key()
        vault.set(SSH_KEY, ssh_pem)
    return Identity(cert_pem=cert_pem, key_pem=key_pem, ssh_private_pem=ssh_pem, ssh_public=_ssh_public_of(ssh_pem))


def keychain_vault(paths: Paths, settings: Settings) -> Vault:
    """The vault that holds the private keys of the node in ``paths``, in the OS keychain."""
    return Vault(KeyringStore(settings.keychain_id), paths.vault_dir)


def load_for_client(paths: Paths, settings: Settings) -> Identity:
    """The certificates and TLS key of the node in ``paths``, for a client that speaks as that node (the command
    line to its own node, the viewer to a peer), with a leaf of its own; never creates an identity. Blocking
    (keychain): call it from a thread."""
    where = paths.home or paths.config_dir
    if not paths.cert_file.exists():
        raise NotRunningError(f"no node has run for {where} yet: start one with `noizylab start`")
    key = keychain_vault(paths, settings).get(TLS_KEY)
    if key is None:
        raise IdentityError(f"the keychain holds no key for the node in {where}")
    identity = Identity(paths.cert_file.read_bytes(), key, b"", "")
    identity.renew(settings.cert_lifetime_s)
    return identity


def node_id_of(cert_pem: bytes) -> str:
    """The node ID a certificate of its key stands for (its public part is enough: no keychain needed)."""
    return format_id(fingerprint(_der(cert_pem)))


def _der(cert_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)


def _check_pair(cert_pem: bytes, key_pem: bytes, where: object) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise IdentityError(f"{where} or its key in the keychain is damaged: delete the file for a new ID") from exc
    if cert.public_key() != key.public_key():
        raise IdentityError(f"{where} does not belong to the key in the keychain: delete the file for a new ID")


def verify_signature(cert_der: bytes, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``data`` was made with the key of ``cert_der``."""
    try:
        public = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError:
        return False
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def is_anchor(cert_der: bytes) -> bool:
    """Whether ``cert_der`` can stand for a node: a P-256 certificate signed by its own key (an anchor, or a
    certificate made before anchors existed, which migrated homes keep as theirs)."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        public = cert.public_key()
    except ValueError:
        return False
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        return False
    if cert.issuer != cert.subject or cert.signature_hash_algorithm is None:
        return False
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over length-prefixed ``parts`` (so no two part lists collide)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big") + part)
    return mac.digest()
