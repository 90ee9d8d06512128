"""A peer's chain of identity rotations, applied by the receiving side: the pin and the permissions follow each
link, the retired IDs lead to the newest one, and a sync share naming the first ID follows it at the next start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.errors import PermissionRefusedError
from noizylab_desktop.core.events import EventBus, PeerKeyRotated
from noizylab_desktop.core.identity import Identity, make_certificate
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.permissions import Permissions
from noizylab_desktop.core.rotation import Receiver, cosign, sign
from noizylab_desktop.core.trust import TrustStore
from noizylab_desktop.node.keys import follow_moves
from noizylab_desktop.services.sync.store import Share, ShareStore


def identity(name: str) -> Identity:
    cert, key = make_certificate(name)
    return Identity(cert, key, b"", "")


def der(ident: Identity) -> bytes:
    return x509.load_pem_x509_certificate(ident.cert_pem).public_bytes(serialization.Encoding.DER)


def test_a_chain_of_two_rotations_moves_the_pin_and_permissions_and_a_share_follows_at_start(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path / "home")
    paths.ensure()
    own, k0, k1, k2 = identity("here"), identity("peer"), identity("peer"), identity("peer")
    trust = TrustStore(paths.trust_db, own.cert_pem)
    trust.add(der(k0), "peer", "ssh-ed25519 AAAA noizylab", ["127.0.0.1:1"])
    permissions = Permissions(paths.state_dir / "permissions.sqlite")
    permissions.set(k0.fingerprint, "tasks", True)
    shares = ShareStore(paths.state_dir / "sync" / "shares.sqlite")
    shares.put(Share("s1", str(tmp_path / "work"), k0.node_id, "peer", "work"))
    shares.close()
    bus = EventBus()
    seen: list[PeerKeyRotated] = []
    bus.listen(lambda e: seen.append(e) if isinstance(e, PeerKeyRotated) else None)
    receiver = Receiver(paths.state_dir / "rotations.sqlite", trust, bus, own.fingerprint, [permissions.move])

    chain = [sign(k0, "identity", 1, new_anchor_der=der(k1)), sign(k1, "identity", 2, new_anchor_der=der(k2))]
    assert receiver.accept(k0.fingerprint, chain) == (k2.fingerprint, 2)

    assert [p.node_id for p in trust.peers()] == [k2.node_id] and trust.peers()[0].name == "peer"
    assert trust.is_trusted(k2.fingerprint) and not trust.is_trusted(k0.fingerprint)
    assert permissions.allowed(k2.fingerprint, "tasks") and not permissions.allowed(k0.fingerprint, "tasks")
    assert [(e.was, e.peer_id) for e in seen] == [(k0.node_id, k1.node_id), (k1.node_id, k2.node_id)]
    assert receiver.moves() == {k0.fingerprint: k2.fingerprint, k1.fingerprint: k2.fingerprint}

    follow_moves(paths, receiver.moves())
    db = sqlite3.connect(paths.state_dir / "sync" / "shares.sqlite")
    assert db.execute("SELECT peer FROM shares").fetchall() == [(format_id(k2.fingerprint),)]
    db.close()
    receiver.close()
    trust.close()
    permissions.close()


def test_with_cosign_asked_a_link_needs_a_members_cosignature_and_a_chain_keeps_the_ones_it_has(
    tmp_path: Path,
) -> None:
    paths = Paths.resolve(tmp_path / "home")
    paths.ensure()
    own, k0, k1, k2, member, outsider = (identity(n) for n in ("here", "peer", "peer", "peer", "member", "outsider"))
    trust = TrustStore(paths.trust_db, own.cert_pem)
    trust.add(der(k0), "peer", "ssh-ed25519 AAAA noizylab", ["127.0.0.1:1"])
    receiver = Receiver(paths.state_dir / "rotations.sqlite", trust, EventBus(), own.fingerprint, [])
    receiver.cosign_required = lambda: True
    members = {m.fingerprint: der(m) for m in (own, member, k0, k1)}  # as the node says: itself included
    receiver.member_anchor = members.get

    first = sign(k0, "identity", 1, new_anchor_der=der(k1))
    for cosigner in (outsider, k0):  # not a member; the rotating key itself
        first.cosignatures.append(cosign(cosigner, first))
        with pytest.raises(PermissionRefusedError, match="asks for a second member's signature"):
            receiver.accept(k0.fingerprint, [first])
    # A member's signature of another body does not carry over.
    second = sign(k1, "identity", 2, new_anchor_der=der(k2))
    first.cosignatures.append(kpb.Cosignature(signer_id=member.fingerprint, signature=cosign(member, second).signature))
    with pytest.raises(PermissionRefusedError, match="asks for a second member's signature"):
        receiver.accept(k0.fingerprint, [first])
    assert trust.is_trusted(k0.fingerprint)

    first.cosignatures.append(cosign(member, first))
    second.cosignatures.append(cosign(own, second))  # the receiver may be the member that co-signed
    assert receiver.accept(k0.fingerprint, [first, second]) == (k2.fingerprint, 2)
    receiver.close()
    trust.close()
