"""The node's shares (what it syncs) and offers (folders it serves to a peer's share), in SQLite."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from noizylab_desktop.core.nodeid import format_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY, local TEXT UNIQUE, peer TEXT, peer_name TEXT, remote TEXT, host_key TEXT,
    paused INTEGER DEFAULT 0, reason TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS offers (
    share_id TEXT PRIMARY KEY, peer_fp BLOB, root TEXT);
"""


def migrate_ids(path: Path, ids: dict[bytes, bytes]) -> None:
    """Re-key the shares and offers of peers whose old IDs (certificate hashes) are in ``ids``."""
    if not ids or not path.exists():
        return
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        for old, new in ids.items():
            db.execute("UPDATE shares SET peer = ? WHERE peer = ?", (format_id(new), format_id(old)))
            db.execute("UPDATE offers SET peer_fp = ? WHERE peer_fp = ?", (new, old))
        db.execute("COMMIT")
    finally:
        db.close()


@dataclass(frozen=True)
class Share:
    """A folder of this node kept in sync with a folder on a peer (or an SSH server)."""

    id: str
    local: str
    peer: str  # the peer's node ID, or ssh://user@host:port
    peer_name: str
    remote: str
    host_key: str = ""
    paused: bool = False
    reason: str = ""

    @property
    def is_ssh(self) -> bool:
        return self.peer.startswith("ssh://")


@dataclass(frozen=True)
class Offer:
    """A folder this node serves to a peer's share."""

    share_id: str
    peer_fp: bytes
    root: Path


class ShareStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def shares(self) -> list[Share]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, local, peer, peer_name, remote, host_key, paused, reason FROM shares ORDER BY local"
            ).fetchall()
        return [Share(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7]) for r in rows]

    def put(self, share: Share) -> None:
        s = share
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO shares VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (s.id, s.local, s.peer, s.peer_name, s.remote, s.host_key, int(s.paused), s.reason),
            )

    def set_paused(self, share: Share, paused: bool, reason: str = "") -> Share:
        updated = replace(share, paused=paused, reason=reason if paused else "")
        self.put(updated)
        return updated

    def remove(self, share_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM shares WHERE id = ?", (share_id,))

    def move_peer(self, old: bytes, new: bytes) -> None:
        """A peer rotated its identity key from ``old`` to ``new``: its offers and the shares with it follow."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE shares SET peer = ? WHERE peer = ?", (format_id(new), format_id(old)))
            self._db.execute("UPDATE offers SET peer_fp = ? WHERE peer_fp = ?", (new, old))
            self._db.execute("COMMIT")

    def offers(self, peer_fp: bytes | None = None) -> list[Offer]:
        with self._lock:
            rows = self._db.execute("SELECT share_id, peer_fp, root FROM offers").fetchall()
        return [Offer(r[0], r[1], Path(r[2])) for r in rows if peer_fp is None or r[1] == peer_fp]

    def put_offer(self, offer: Offer) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO offers VALUES (?, ?, ?)", (offer.share_id, offer.peer_fp, str(offer.root))
            )
