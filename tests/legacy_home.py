"""Homes as the version before IDs named keys wrote them: a 20-year self-signed certificate (``CA:FALSE``) whose
SHA-256 was the node's ID, and stores keyed by that ID. Built here byte for byte as that code wrote them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from noizylab_desktop.core.config import Paths, atomic_write, load_settings
from noizylab_desktop.core.identity import SSH_KEY, TLS_KEY, keychain_vault, make_ssh_key
from noizylab_desktop.core.nodeid import format_id
from tests.conftest import NodeProcess

# The stores' tables as that version made them.
OLD_TRUST = (
    "CREATE TABLE peers (fingerprint BLOB PRIMARY KEY, name TEXT NOT NULL, cert_der BLOB NOT NULL, "
    "ssh_key TEXT NOT NULL, addresses TEXT NOT NULL, paired_at REAL NOT NULL, removed_at REAL)"
)
OLD_PERMISSIONS = (
    "CREATE TABLE permissions (fingerprint BLOB NOT NULL, scope TEXT NOT NULL, allowed INTEGER NOT NULL, "
    "PRIMARY KEY (fingerprint, scope))"
)


@dataclass(frozen=True)
class OldIdentity:
    """A node identity as the old version made it."""

    cert_pem: bytes
    key_pem: bytes
    ssh_private_pem: bytes
    ssh_public: str

    @property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(serialization.Encoding.DER)

    @property
    def old_fp(self) -> bytes:
        return hashlib.sha256(self.cert_der).digest()

    @property
    def old_id(self) -> str:
        return format_id(self.old_fp)


def old_identity(name: str) -> OldIdentity:
    """The old ``make_certificate``: P-256, self-signed, ``CA:FALSE``, 20 years, unique subject."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"noizylab-{os.urandom(8).hex()}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name[:64]),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * 20))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("noizylab")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ssh_private, ssh_public = make_ssh_key()
    return OldIdentity(cert.public_bytes(serialization.Encoding.PEM), key_pem, ssh_private, ssh_public)


def write_old_home(node: NodeProcess, me: OldIdentity) -> None:
    """Give ``node``'s home the old identity ``me``: keys in the keychain, the certificate in the state folder."""
    paths = Paths.resolve(node.home)
    paths.ensure()
    vault = keychain_vault(paths, load_settings(paths))
    vault.set(TLS_KEY, me.key_pem)
    vault.set(SSH_KEY, me.ssh_private_pem)
    atomic_write(paths.cert_file, me.cert_pem, mode=0o644)
    for schema, name in ((OLD_TRUST, "trust.sqlite"), (OLD_PERMISSIONS, "permissions.sqlite")):
        db = sqlite3.connect(paths.state_dir / name)
        db.execute(schema)
        db.commit()
        db.close()


def old_pairing(node: NodeProcess, peer: OldIdentity, name: str, addresses: list[str], *scopes: str) -> None:
    """Record in ``node``'s old stores that it paired with ``peer`` and lets it use ``scopes``."""
    state = Paths.resolve(node.home).state_dir
    db = sqlite3.connect(state / "trust.sqlite")
    db.execute(
        "INSERT INTO peers VALUES (?, ?, ?, ?, ?, ?, NULL)",
        (peer.old_fp, name, peer.cert_der, peer.ssh_public, json.dumps(addresses), time.time()),
    )
    db.commit()
    db.close()
    db = sqlite3.connect(state / "permissions.sqlite")
    db.executemany("INSERT INTO permissions VALUES (?, ?, 1)", [(peer.old_fp, scope) for scope in scopes])
    db.commit()
    db.close()
