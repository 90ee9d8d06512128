"""Key rotation as a peer sees it: a node's signed statement "my old key -> my new key", checked against the key
this node pins for it, and followed without re-pairing (``docs/trust.md``, key rotation).

A statement (``SignedRotation``) is a ``RotationBody`` signed, as the exact bytes sent, by the key the body's
``old_id`` names. An ``identity`` link carries the new key's anchor: this node moves the peer's pin, its permissions
and its settings from the old ID to the new one. An ``ssh`` link carries a new SSH public key (the identity key
stays): this node's SFTP server accepts it and refuses the old one from then on (it asks the trust store at each
login). Every link has the rotating node's ``generation``, which only goes up.

When the grid asks for it (``[grid] rotation_cosign``), an identity link also needs a **co-signature**: a second
member's signature over the same body (with its own context prefix, so it never reads as that member's own
statement). The rotating node asks an online member for one (``Keys.Cosign``); that member co-signs only its caller's
own rotation, checked as a receiver checks it, and only for a member of its list (``cosign_check``).

Refused, each with one line: a link whose ``old_id`` is not the caller (a peer can rotate only its own key; later
links in a chain must follow on from the one before), one not signed by the pinned key, a generation not above the
last one taken from that node (a replay), and an anchor that is not a P-256 self-signed certificate or that another
peer (or this node) already holds. A retired ID is remembered (``rotations.sqlite``), so a replayed old statement is
named as one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError

from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
from noizylab_desktop.core.errors import PermissionRefusedError
from noizylab_desktop.core.events import EventBus, PeerKeyRotated
from noizylab_desktop.core.identity import Identity, is_anchor, verify_signature
from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.trust import TrustStore

logger = logging.getLogger(__name__)

KINDS = ("identity", "ssh")
MAX_BODY = 4096  # an anchor is ~600 bytes
MAX_LINKS = 64
_CONTEXT = b"noizylab-rotation-v1\0"  # signed before the body, so no other signature of this key reads as one
_COSIGN_CONTEXT = b"noizylab-rotation-cosign-v1\0"  # a second member's signature of another node's rotation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (fingerprint BLOB PRIMARY KEY, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retired (old BLOB PRIMARY KEY, new BLOB NOT NULL, generation INTEGER NOT NULL,
                                    at REAL NOT NULL);
"""


def signed_bytes(body: bytes) -> bytes:
    """What a rotation's signatures cover."""
    return _CONTEXT + body


def sign(
    identity: Identity, kind: str, generation: int, *, new_anchor_der: bytes = b"", ssh_key: str = ""
) -> kpb.SignedRotation:
    """A rotation statement signed by ``identity`` (the key being rotated away from, or kept for an SSH rotation)."""
    body = kpb.RotationBody(
        kind=kind,
        old_id=identity.fingerprint,
        new_anchor=new_anchor_der,
        ssh_key=ssh_key,
        generation=generation,
        at=time.time(),
    ).SerializeToString()
    return kpb.SignedRotation(body=body, signature=identity.sign(signed_bytes(body)))


def cosigned_bytes(body: bytes) -> bytes:
    """What a second member's co-signature covers."""
    return _COSIGN_CONTEXT + body


def cosign(identity: Identity, link: kpb.SignedRotation) -> kpb.Cosignature:
    """``identity``'s co-signature of another node's rotation statement."""
    return kpb.Cosignature(signer_id=identity.fingerprint, signature=identity.sign(cosigned_bytes(link.body)))


def body_of(link: kpb.SignedRotation) -> kpb.RotationBody:
    """The statement in ``link``, or a one-line refusal when it cannot be one."""
    if len(link.body) > MAX_BODY:
        raise PermissionRefusedError(f"a key rotation statement is at most {MAX_BODY} bytes")
    body = kpb.RotationBody()
    try:
        body.ParseFromString(link.body)
    except DecodeError:
        raise PermissionRefusedError("a key rotation statement that does not parse was refused") from None
    if body.kind not in KINDS:
        raise PermissionRefusedError(f"unknown key rotation kind {body.kind!r}: expected identity or ssh")
    return body


def ssh_key_ok(key: str) -> bool:
    """Whether ``key`` is one ``ssh-ed25519 AAAA...`` public key line."""
    try:
        public = serialization.load_ssh_public_key(" ".join(key.split()[:2]).encode())
    except (ValueError, UnicodeEncodeError):
        return False
    return isinstance(public, ed25519.Ed25519PublicKey) and key.isprintable()


class Receiver:
    """Checks and applies the rotations paired peers send this node; ``movers`` re-key other per-peer stores
    (permissions first) when a peer's ID changes."""

    def __init__(
        self,
        path: Path,
        trust: TrustStore,
        bus: EventBus,
        own_fp: bytes,
        movers: list[Callable[[bytes, bytes], None]],
    ) -> None:
        # ``[grid] rotation_cosign``: whether an identity rotation needs a second member's signature, and the anchor
        # (DER) of a member that may give one (None: not a member here, or removed).
        self.cosign_required: Callable[[], bool] = lambda: False
        self.member_anchor: Callable[[bytes], bytes | None] = lambda fp: None
        self.trust = trust
        self.bus = bus
        self.own_fp = own_fp
        self.movers = movers
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def generation(self, fp: bytes) -> int:
        """The newest rotation generation taken from the peer pinned as ``fp`` (0: none yet)."""
        row = self._db.execute("SELECT generation FROM latest WHERE fingerprint = ?", (fp,)).fetchone()
        return int(row[0]) if row else 0

    def _retired(self, fp: bytes) -> bytes | None:
        row = self._db.execute("SELECT new FROM retired WHERE old = ?", (fp,)).fetchone()
        return bytes(row[0]) if row else None

    def moves(self) -> dict[bytes, bytes]:
        """Every retired peer ID and the ID that peer has now (after all its rotations)."""
        step = {bytes(o): bytes(n) for o, n in self._db.execute("SELECT old, new FROM retired").fetchall()}
        final = {}
        for old, new in step.items():
            seen = {old}
            while new in step and new not in seen:
                seen.add(new)
                new = step[new]
            final[old] = new
        return final

    def accept(self, caller: bytes, links: list[kpb.SignedRotation]) -> tuple[bytes, int]:
        """Check and apply ``links`` in order, the first rotating ``caller``'s key; the peer's ID and generation
        after them. A refused link raises ``PermissionRefusedError``; the links before it stay applied (each was
        valid on its own)."""
        if not links or len(links) > MAX_LINKS:
            raise PermissionRefusedError(f"a key rotation chain has 1 to {MAX_LINKS} statements")
        current = caller
        with self._lock:
            for link in links:
                current = self._accept_one(current, link)
            return current, self.generation(current)

    def cosign_check(self, caller: bytes, link: kpb.SignedRotation) -> kpb.RotationBody:
        """What this node checks before it co-signs ``caller``'s rotation: everything it would check taking it."""
        body = body_of(link)
        if bytes(body.old_id) != caller:
            raise PermissionRefusedError("a member co-signs only its caller's own key rotation: this one names another")
        if body.kind != "identity":
            raise PermissionRefusedError("only an identity key rotation is co-signed")
        with self._lock:
            self._check(caller, link, body)
        return body

    def _check(self, current: bytes, link: kpb.SignedRotation, body: kpb.RotationBody) -> None:
        """The checks of a link whose ``old_id`` is ``current``, bar its co-signatures; raises when refused."""
        peer = self.trust.get(current)
        if peer is None:
            raise PermissionRefusedError("a key rotation from a node that is not paired with this one was refused")
        if not verify_signature(peer.cert_der, signed_bytes(link.body), link.signature):
            raise PermissionRefusedError(
                f"refused a key rotation for {peer.name}: it is not signed by the key this node pins for it"
            )
        seen = self.generation(current)
        if body.generation <= seen:
            raise PermissionRefusedError(
                f"refused a replayed key rotation for {peer.name}: generation {body.generation} is not newer than "
                f"{seen}"
            )
        if body.kind == "identity":
            anchor = bytes(body.new_anchor)
            if not is_anchor(anchor):
                raise PermissionRefusedError(
                    f"refused {peer.name}'s key rotation: the new key's certificate is no anchor"
                )
            new = fingerprint(anchor)
            if new == self.own_fp or self.trust.get(new) is not None or self._retired(new) is not None:
                raise PermissionRefusedError(f"refused {peer.name}'s key rotation: its new key is already known here")

    def _cosigned(self, current: bytes, link: kpb.SignedRotation) -> bool:
        """Whether a member other than the rotating node co-signed ``link``."""
        for cosignature in link.cosignatures:
            signer = bytes(cosignature.signer_id)
            anchor = self.member_anchor(signer) if signer != current else None
            if anchor and verify_signature(anchor, cosigned_bytes(link.body), cosignature.signature):
                return True
        return False

    def _accept_one(self, current: bytes, link: kpb.SignedRotation) -> bytes:
        body = body_of(link)
        old = bytes(body.old_id)
        if old != current:
            moved = self._retired(old)
            if moved is not None:
                raise PermissionRefusedError(
                    f"refused a replayed key rotation: {format_id(old)} already moved to {format_id(moved)}"
                )
            raise PermissionRefusedError("a peer can rotate only its own key: the statement names another node")
        self._check(current, link, body)
        peer = self.trust.get(current)
        assert peer is not None  # _check refused an unpaired one
        if body.kind == "ssh":
            if not ssh_key_ok(body.ssh_key):
                raise PermissionRefusedError(f"refused {peer.name}'s SSH key rotation: the key is not ssh-ed25519")
            self.trust.set_ssh_key(current, body.ssh_key)
            self._db.execute("INSERT OR REPLACE INTO latest VALUES (?, ?)", (current, body.generation))
            logger.info("peer %s rotated its SSH key (generation %d)", peer.name, body.generation)
            self.bus.publish(PeerKeyRotated(peer_id=peer.node_id, name=peer.name, was=peer.node_id, key="ssh"))
            return current
        if self.cosign_required() and not self._cosigned(current, link):
            raise PermissionRefusedError(
                f"refused {peer.name}'s key rotation: this grid asks for a second member's signature "
                "(grid.rotation_cosign), and it has none from a member"
            )
        anchor = bytes(body.new_anchor)
        new = fingerprint(anchor)
        for move in self.movers:
            move(current, new)
        self.trust.move(current, anchor)
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("INSERT OR REPLACE INTO retired VALUES (?, ?, ?, ?)", (current, new, body.generation, body.at))
        self._db.execute("DELETE FROM latest WHERE fingerprint = ?", (current,))
        self._db.execute("INSERT OR REPLACE INTO latest VALUES (?, ?)", (new, body.generation))
        self._db.execute("COMMIT")
        logger.info("peer %s rotated its key: %s is now %s", peer.name, format_id(current), format_id(new))
        self.bus.publish(PeerKeyRotated(peer_id=format_id(new), name=peer.name, was=peer.node_id, key="identity"))
        return new

    def close(self) -> None:
        self._db.close()
