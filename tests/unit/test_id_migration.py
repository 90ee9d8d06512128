"""An old home's stores, keyed by certificate-hash IDs, are re-keyed by key IDs once, before the trust store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.permissions import Permissions
from noizylab_desktop.core.trust import TrustStore, legacy_ids
from noizylab_desktop.node.id_migration import migrate_home
from noizylab_desktop.services.sync.store import Offer, Share, ShareStore
from noizylab_desktop.services.tunnel.store import TunnelRecord, TunnelStore
from tests.legacy_home import OLD_PERMISSIONS, OLD_TRUST, OldIdentity, old_identity


def _old_home(tmp_path: Path, peer: OldIdentity, other: OldIdentity) -> Paths:
    paths = Paths.resolve(tmp_path)
    paths.ensure()
    db = sqlite3.connect(paths.trust_db)
    db.execute(OLD_TRUST)
    db.execute("INSERT INTO peers VALUES (?, 'pc', ?, '', '[]', 1.0, NULL)", (peer.old_fp, peer.cert_der))
    db.commit()
    db.close()
    db = sqlite3.connect(paths.state_dir / "permissions.sqlite")
    db.execute(OLD_PERMISSIONS)
    db.executemany("INSERT INTO permissions VALUES (?, ?, 1)", [(peer.old_fp, "tasks"), (other.old_fp, "sync")])
    db.commit()
    db.close()
    tunnels = TunnelStore(paths.state_dir / "tunnels.json")
    tunnels.put(TunnelRecord(peer.old_fp.hex(), 8888, 18888))
    tunnels.set_rule(peer.old_fp.hex(), 11434, True)
    tunnels.save()
    shares = ShareStore(paths.state_dir / "sync" / "shares.sqlite")
    shares.put(Share("s1", str(tmp_path / "music"), peer.old_id, "pc", "/music"))
    shares.put_offer(Offer("s2", peer.old_fp, tmp_path / "photos"))
    shares.close()
    return paths


def test_every_store_names_the_peer_by_its_key_after_migration(tmp_path: Path) -> None:
    peer, stranger = old_identity("pc"), old_identity("not paired")
    paths = _old_home(tmp_path / "home", peer, stranger)
    new = fingerprint(peer.cert_der)
    # A trust store opened before the node migrates (`noizylab doctor` right after the upgrade) changes nothing.
    TrustStore(paths.trust_db, old_identity("here").cert_pem).close()
    assert legacy_ids(paths.trust_db) == {peer.old_fp: new}

    assert migrate_home(paths) == 1
    permissions = Permissions(paths.state_dir / "permissions.sqlite")
    assert permissions.for_peer(new)["tasks"] and not permissions.for_peer(peer.old_fp).get("tasks")
    assert permissions.for_peer(stranger.old_fp)["sync"]  # an ID the trust store never had is left alone
    permissions.close()
    tunnels = TunnelStore(paths.state_dir / "tunnels.json")
    assert [t.peer for t in tunnels.tunnels] == [new.hex()] and tunnels.allowed(new.hex(), 11434)
    shares = ShareStore(paths.state_dir / "sync" / "shares.sqlite")
    assert [s.peer for s in shares.shares()] == [format_id(new)]
    assert [o.peer_fp for o in shares.offers()] == [new]
    shares.close()

    trust = TrustStore(paths.trust_db, old_identity("here").cert_pem)  # the trust store was re-keyed last
    [stored] = trust.peers()
    assert stored.fingerprint == new and trust.is_trusted(new) and not trust.is_trusted(peer.old_fp)
    trust.close()
    # Once: the trust store is keyed by keys now, so nothing is left to map.
    assert legacy_ids(paths.trust_db) == {} and migrate_home(paths) == 0


def test_a_damaged_tunnels_file_is_left_for_the_store_to_ignore(tmp_path: Path) -> None:
    peer = old_identity("pc")
    paths = _old_home(tmp_path / "home", peer, old_identity("x"))
    (paths.state_dir / "tunnels.json").write_text("{not json")
    assert migrate_home(paths) == 1
    assert (paths.state_dir / "tunnels.json").read_text() == "{not json"
