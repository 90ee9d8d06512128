"""The trust store: the peers this node paired with, pinned by key (SQLite).

Each row is keyed by the peer's node ID (the SHA-256 of its public key) and keeps its anchor certificate, the trust
root that every TLS certificate of that key chains to (``identity.py``). ``pins_keys`` says whether the peer is
known to pin keys too (it paired with this version, or said so in a heartbeat); until then a node whose anchor is
its old certificate shows it that certificate as a client (``Identity.client_chain``).

Rows written before IDs named keys are keyed by their certificate's SHA-256; ``legacy_ids`` lists them, and
``key_rows`` re-keys them once. Both are called by ``node/id_migration.py`` before a node opens its stores: the other
stores are re-keyed first, so a store is never left keyed by IDs the trust store no longer knows. A store opened
before that (``noizylab doctor`` on a home not started since the upgrade) leaves the rows as they are.

A peer that unpaired this node and said so (``Node.Unpaired``) stays here, with ``removed_at`` set, until this node's
own user unpairs it too: it is shown as having removed this machine rather than as offline forever.

The set of trusted fingerprints is also kept in memory as an immutable snapshot with a version number, because the
TLS layer asks for it on every handshake, from gRPC's own threads.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.errors import ConfigError, PeerError
from noizylab_desktop.core.nodeid import fingerprint, format_id, legacy_fingerprint

logger = logging.getLogger(__name__)

MAX_NAME = 64


def machine_name(wanted: str) -> str:
    """``wanted`` as a machine's name (runs of spaces made one), or a one-line ``ConfigError``."""
    name = " ".join(wanted.split())
    if not name or not name.isprintable() or len(name) > MAX_NAME:
        raise ConfigError(f"a machine's name is 1 to {MAX_NAME} printable characters, not {wanted!r}")
    return name


_SCHEMA = """
CREATE TABLE IF NOT EXISTS peers (
    fingerprint BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    cert_der BLOB NOT NULL,
    ssh_key TEXT NOT NULL,
    addresses TEXT NOT NULL,
    paired_at REAL NOT NULL,
    removed_at REAL,
    pins_keys INTEGER NOT NULL DEFAULT 0
)
"""
_COLUMNS = "fingerprint, name, cert_der, ssh_key, addresses, paired_at, removed_at, pins_keys"
KEYED = 1  # PRAGMA user_version once rows are keyed by public key


def legacy_ids(path: Path) -> dict[bytes, bytes]:
    """The peers in the store at ``path`` still keyed by certificate hash: old ID to key ID (empty once migrated)."""
    if not path.exists():
        return {}
    db = sqlite3.connect(path)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] >= KEYED:
            return {}
        try:
            rows = db.execute("SELECT fingerprint, cert_der FROM peers").fetchall()
        except sqlite3.OperationalError:  # no table yet
            return {}
    finally:
        db.close()
    return {bytes(fp): fingerprint(bytes(der)) for fp, der in rows if bytes(fp) == legacy_fingerprint(bytes(der))}


def key_rows(path: Path) -> None:
    """Once: re-key the rows written when IDs were certificate hashes by their keys, in one transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] >= KEYED:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for fp, der in db.execute("SELECT fingerprint, cert_der FROM peers").fetchall():
                if bytes(fp) == legacy_fingerprint(bytes(der)):
                    new = fingerprint(bytes(der))
                    db.execute("UPDATE peers SET fingerprint = ? WHERE fingerprint = ?", (new, fp))
                    logger.info("peer %s is now known by its key: %s", format_id(bytes(fp)), format_id(new))
            db.execute(f"PRAGMA user_version = {KEYED}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()


@dataclass(frozen=True)
class TrustedPeer:
    """A paired peer as stored."""

    fingerprint: bytes
    name: str
    cert_der: bytes
    ssh_key: str
    addresses: tuple[str, ...]
    paired_at: float
    removed_at: float | None = None  # when the peer said it unpaired this node
    pins_keys: bool = True  # False while it may still pin certificates (see the module's docstring)

    @property
    def node_id(self) -> str:
        return format_id(self.fingerprint)

    @property
    def cert_pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.cert_der).public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class TrustSnapshot:
    """What the TLS layer needs, swapped atomically on every change.

    ``roots_pem`` holds one certificate per subject: TLS libraries look a self-signed certificate up among the roots
    by subject and refuse it unless the first one found is that very certificate. Certificates made before subjects
    were unique (``CN=noizylab, O=<host name>``) can share one; then the peers' certificates come first (this node's
    own clients also have the loopback-only port, whose only root is this node's certificate), and of two peers
    with one subject only the older one can connect (``shadowed``, logged with the way out).
    """

    version: int
    fingerprints: frozenset[bytes]
    roots_pem: bytes
    shadowed: tuple[tuple[TrustedPeer, TrustedPeer], ...] = ()


def _subject(cert_der: bytes) -> bytes:
    return x509.load_der_x509_certificate(cert_der).subject.public_bytes()


def _roots(
    own_der: bytes, own_pem: bytes, peers: list[TrustedPeer]
) -> tuple[bytes, list[tuple[TrustedPeer, TrustedPeer]]]:
    """The roots for the gRPC port, one per subject, and the (kept, shadowed) peer pairs that share one."""
    kept: dict[bytes, TrustedPeer] = {}
    shadowed: list[tuple[TrustedPeer, TrustedPeer]] = []
    for peer in peers:
        subject = _subject(peer.cert_der)
        if subject in kept:
            shadowed.append((kept[subject], peer))
        else:
            kept[subject] = peer
    own = b"" if _subject(own_der) in kept else own_pem
    return own + b"".join(p.cert_pem for p in kept.values()), shadowed


class TrustStore:
    """Paired peers; thread-safe, since TLS handshakes consult it from gRPC's threads."""

    def __init__(self, path: Path, own_cert_pem: bytes) -> None:
        self._path = path
        self._own_pem = own_cert_pem
        self._own_der = x509.load_pem_x509_certificate(own_cert_pem).public_bytes(serialization.Encoding.DER)
        self._own_fp = fingerprint(self._own_der)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(peers)")}
        if "removed_at" not in columns:  # a store made before peers could say they removed this node
            self._db.execute("ALTER TABLE peers ADD COLUMN removed_at REAL")
        if "pins_keys" not in columns:
            self._db.execute("ALTER TABLE peers ADD COLUMN pins_keys INTEGER NOT NULL DEFAULT 0")
        self._peers: dict[bytes, TrustedPeer] = {}
        self.snapshot = TrustSnapshot(0, frozenset(), b"")
        self._reload(0)

    def _reload(self, version: int) -> None:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM peers ORDER BY paired_at").fetchall()
        peers = {
            bytes(r[0]): TrustedPeer(
                bytes(r[0]), r[1], bytes(r[2]), r[3], tuple(json.loads(r[4])), r[5], r[6], bool(r[7])
            )
            for r in rows
        }
        self._peers = peers
        roots, shadowed = _roots(self._own_der, self._own_pem, list(peers.values()))
        for kept, hidden in shadowed:
            if (kept, hidden) not in self.snapshot.shadowed:
                logger.warning(
                    "peers %s (%s) and %s (%s) hold certificates with the same subject (both made before subjects "
                    "were unique), so only %s can connect to this node: on %s, delete state/node-cert.pem to give it "
                    "a new ID, then pair it again",
                    kept.name,
                    kept.node_id,
                    hidden.name,
                    hidden.node_id,
                    kept.name,
                    hidden.name,
                )
        self.snapshot = TrustSnapshot(version, frozenset(peers) | {self._own_fp}, roots, tuple(shadowed))

    def is_trusted(self, fp: bytes) -> bool:
        """True for this node itself and every paired peer."""
        return fp in self.snapshot.fingerprints

    def peers(self) -> list[TrustedPeer]:
        """Every paired peer, oldest first."""
        return list(self._peers.values())

    def get(self, fp: bytes) -> TrustedPeer | None:
        """The peer with this fingerprint, if paired."""
        return self._peers.get(fp)

    def add(self, cert_der: bytes, name: str, ssh_key: str, addresses: list[str], reserved: str = "") -> TrustedPeer:
        """Trust a peer by the anchor ``cert_der`` it showed at pairing (or refresh it when paired again, which clears
        ``removed_at``), under a name no other peer and not ``reserved`` holds. Pairing needs both sides on a version
        that pins keys, so the peer does."""
        fp = fingerprint(cert_der)
        with self._lock:
            unique = self._free_name(name, fp, reserved)
            self._db.execute(
                f"INSERT OR REPLACE INTO peers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, 1)",
                (fp, unique, cert_der, ssh_key, json.dumps(addresses), time.time()),
            )
            self._reload(self.snapshot.version + 1)
        return self._peers[fp]

    def _free_name(self, wanted: str, fp: bytes, reserved: str) -> str:
        """``wanted`` (trimmed), or ``wanted-2``, ``-3``... when another peer or this node (``reserved``) has it."""
        base = " ".join(wanted.split())[:MAX_NAME] or "peer"
        taken = {p.name.casefold() for p in self._peers.values() if p.fingerprint != fp}
        if reserved:
            taken.add(reserved.casefold())
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            name = f"{base[: MAX_NAME - len(str(n)) - 1]}-{n}"
        return name

    def rename(self, fp: bytes, wanted: str, reserved: str = "") -> TrustedPeer | None:
        """Call the peer ``fp`` by the name it chose now (made unique as at pairing); the peer when its name changed,
        None when it did not (or ``fp`` is no paired peer)."""
        with self._lock:
            peer = self._peers.get(fp)
            if peer is None:
                return None
            unique = self._free_name(wanted, fp, reserved)
            if unique == peer.name:
                return None
            self._db.execute("UPDATE peers SET name = ? WHERE fingerprint = ?", (unique, fp))
            self._reload(self.snapshot.version)
            return self._peers[fp]

    def set_addresses(self, fp: bytes, addresses: list[str]) -> None:
        """Remember where a peer is now reachable."""
        with self._lock:
            if fp not in self._peers or list(self._peers[fp].addresses) == addresses:
                return
            self._db.execute("UPDATE peers SET addresses = ? WHERE fingerprint = ?", (json.dumps(addresses), fp))
            self._reload(self.snapshot.version)

    def mark_pins_keys(self, fp: bytes) -> TrustedPeer | None:
        """The peer ``fp`` said it pins keys (a heartbeat): from now on it is shown this node's current certificate.
        The peer when that is news, else None."""
        with self._lock:
            peer = self._peers.get(fp)
            if peer is None or peer.pins_keys:
                return None
            self._db.execute("UPDATE peers SET pins_keys = 1 WHERE fingerprint = ?", (fp,))
            self._reload(self.snapshot.version)
        return self._peers.get(fp)

    def move(self, old: bytes, anchor_der: bytes) -> TrustedPeer | None:
        """The peer ``old`` rotated its key (``rotation.py`` checked the statement): pin the new ``anchor_der`` under
        its new ID, keeping its name, SSH key, addresses and pairing time; the old key is refused from the next
        handshake on."""
        new = fingerprint(anchor_der)
        with self._lock:
            if old not in self._peers:
                return None
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE peers SET fingerprint = ?, cert_der = ?, pins_keys = 1 WHERE fingerprint = ?",
                (new, anchor_der, old),
            )
            self._db.execute("COMMIT")
            self._reload(self.snapshot.version + 1)
        return self._peers.get(new)

    def set_ssh_key(self, fp: bytes, ssh_key: str) -> None:
        """The peer ``fp`` rotated its SSH key: its SFTP logins take the new one and refuse the old from now on."""
        with self._lock:
            if fp not in self._peers:
                return
            self._db.execute("UPDATE peers SET ssh_key = ? WHERE fingerprint = ?", (ssh_key, fp))
            self._reload(self.snapshot.version)

    def mark_removed(self, fp: bytes, at: float) -> TrustedPeer | None:
        """Remember that the peer ``fp`` unpaired this node at ``at`` (the first time it said so); it stays trusted
        until this node's user unpairs it. None when ``fp`` is no paired peer."""
        with self._lock:
            peer = self._peers.get(fp)
            if peer is None or peer.removed_at is not None:
                return peer
            self._db.execute("UPDATE peers SET removed_at = ? WHERE fingerprint = ?", (at, fp))
            # Whom this node trusts is unchanged: the TLS layer's snapshot keeps its version.
            self._reload(self.snapshot.version)
        return self._peers.get(fp)

    def remove(self, fp: bytes) -> TrustedPeer | None:
        """Stop trusting a peer; the next handshake from it fails."""
        with self._lock:
            peer = self._peers.get(fp)
            self._db.execute("DELETE FROM peers WHERE fingerprint = ?", (fp,))
            self._reload(self.snapshot.version + 1)
        return peer

    def find(self, ref: str) -> TrustedPeer:
        """The peer ``ref`` names: an exact ID or exact name first, else the one peer whose ID starts with it."""
        needle = ref.strip()
        if not needle:
            raise PeerError("name a peer by its ID, the start of its ID, or its name")
        flat = needle.upper().replace("-", "")
        peers = self._peers.values()
        # A peer chooses its own name, so a name must not be able to shadow another peer: exact matches win.
        exact = [p for p in peers if p.node_id.replace("-", "") == flat] or [p for p in peers if p.name == needle]
        matches = exact or [p for p in peers if p.node_id.replace("-", "").startswith(flat)]
        if not matches:
            raise PeerError(f"no paired peer matches {ref!r}: see `noizylab peers`")
        if len(matches) > 1 and exact:
            # Peers paired before names were made unique can share one.
            raise PeerError(f"{ref!r} names {len(matches)} peers ({', '.join(p.node_id for p in matches)}): use an ID")
        if len(matches) > 1:
            raise PeerError(f"{ref!r} matches {len(matches)} peers: give more of the ID")
        return matches[0]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
