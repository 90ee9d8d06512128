"""The trust store remembers when a peer said it unpaired this node, in stores made before it could, too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.identity import make_certificate
from noizylab_desktop.core.nodeid import fingerprint, legacy_fingerprint
from noizylab_desktop.core.trust import TrustStore, key_rows


def _peer_der() -> bytes:
    return x509.load_pem_x509_certificate(make_certificate("pc")[0]).public_bytes(serialization.Encoding.DER)


def test_a_peer_that_removed_this_node_stays_trusted_with_the_first_time_it_said_so(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust.sqlite", make_certificate("here")[0])
    peer = store.add(_peer_der(), "pc", "", ["127.0.0.1:1"])
    version = store.snapshot.version

    marked = store.mark_removed(peer.fingerprint, 1000.0)
    store.mark_removed(peer.fingerprint, 2000.0)

    assert marked is not None and marked.removed_at == 1000.0
    assert store.get(peer.fingerprint) == marked and store.is_trusted(peer.fingerprint)
    assert store.snapshot.version == version  # whom the TLS layer accepts did not change
    store.close()
    reopened = TrustStore(tmp_path / "trust.sqlite", make_certificate("here")[0])
    assert [p.removed_at for p in reopened.peers()] == [1000.0]
    reopened.close()


def test_marking_an_unknown_fingerprint_changes_nothing(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust.sqlite", make_certificate("here")[0])
    store.add(_peer_der(), "pc", "", [])
    assert store.mark_removed(b"\x00" * 32, 1000.0) is None
    assert [p.removed_at for p in store.peers()] == [None]
    store.close()


def test_pairing_again_clears_removed_at(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust.sqlite", make_certificate("here")[0])
    der = _peer_der()
    store.mark_removed(store.add(der, "pc", "", []).fingerprint, 1000.0)
    assert store.add(der, "pc", "", []).removed_at is None
    store.close()


def test_a_store_made_before_removed_at_gains_the_column_and_keeps_its_peers(tmp_path: Path) -> None:
    path = tmp_path / "trust.sqlite"
    der = _peer_der()
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE peers (fingerprint BLOB PRIMARY KEY, name TEXT NOT NULL, cert_der BLOB NOT NULL,"
        " ssh_key TEXT NOT NULL, addresses TEXT NOT NULL, paired_at REAL NOT NULL)"
    )
    old.execute("INSERT INTO peers VALUES (?, 'pc', ?, '', '[]', 5.0)", (legacy_fingerprint(der), der))
    old.commit()
    old.close()

    key_rows(path)  # as the node does before it opens the store (node/id_migration.py)
    store = TrustStore(path, make_certificate("here")[0])
    [peer] = store.peers()
    assert (peer.name, peer.paired_at, peer.removed_at) == ("pc", 5.0, None)
    # Re-keyed by its key once; it may still pin certificates until it says otherwise.
    assert (peer.fingerprint, peer.pins_keys) == (fingerprint(der), False)
    assert store.mark_removed(peer.fingerprint, 7.0) is not None
    assert store.peers()[0].removed_at == 7.0
    store.close()
