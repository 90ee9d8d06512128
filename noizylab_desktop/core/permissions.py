"""Per-peer permissions: what each paired peer may ask of this node (SQLite, survives restarts).

Every scope is off for a new peer until the person turns it on (tray or ``noizylab allow``); unpairing forgets them.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.nodeid import format_id

if TYPE_CHECKING:  # the events (and asyncio) are imported where one is published: `noizylab start` needs neither
    from noizylab_desktop.core.events import EventBus

# What a peer may be allowed; features check their own scope with ``require_permission``.
SCOPES: dict[str, str] = {
    "tasks": "run commands and jobs on this machine",
    "clipboard": "exchange clipboard contents with this machine",
    "display": "view this machine's screen",
    "control": "control this machine's mouse and keyboard while viewing",
    "sync": "sync shared folders with this machine",
    "tunnel": "open tunnels to this machine's local ports (only those `noizylab tunnel allow` names)",
    "files": "send files into this machine's received-files folder (Downloads/NOIZYLAB)",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS permissions (
    fingerprint BLOB NOT NULL,
    scope TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, scope)
)
"""

# Granting these takes a TOTP step-up when TOTP is on (docs/trust.md), from the command line and the tray alike.
SENSITIVE_SCOPES = ("control", "display", "tasks")


def migrate_ids(path: Path, ids: dict[bytes, bytes]) -> None:
    """Re-key the switches of peers whose old IDs (certificate hashes) are in ``ids`` by their key IDs."""
    if not ids or not path.exists():
        return
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "UPDATE OR REPLACE permissions SET fingerprint = ? WHERE fingerprint = ?",
            [(new, old) for old, new in ids.items()],
        )
        db.execute("COMMIT")
    finally:
        db.close()


def check_scope(scope: str) -> str:
    """``scope`` if it is one we know, else a one-line error listing them."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown permission {scope!r}: use one of {', '.join(SCOPES)}")
    return scope


class Permissions:
    """Thread-safe per-peer switches, cached in memory because every call consults them."""

    def __init__(self, path: Path, bus: EventBus | None = None) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        rows = self._db.execute("SELECT fingerprint, scope, allowed FROM permissions").fetchall()
        self._cache: dict[tuple[bytes, str], bool] = {(bytes(r[0]), r[1]): bool(r[2]) for r in rows}

    def allowed(self, fp: bytes, scope: str) -> bool:
        """Whether the peer with fingerprint ``fp`` may use ``scope`` (off unless turned on)."""
        return self._cache.get((fp, scope), False)

    def set(self, fp: bytes, scope: str, allowed: bool, peer_id: str = "") -> None:
        """Turn ``scope`` on or off for a peer; the node ends what relied on a scope turned off."""
        check_scope(scope)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO permissions VALUES (?, ?, ?)", (fp, scope, int(allowed)))
            self._cache[(fp, scope)] = allowed
        if self._bus is not None:
            from noizylab_desktop.core.events import PermissionChanged

            self._bus.publish(PermissionChanged(peer_id=peer_id or format_id(fp), scope=scope, allowed=allowed))

    def for_peer(self, fp: bytes) -> dict[str, bool]:
        """Every scope and whether this peer has it."""
        return {scope: self.allowed(fp, scope) for scope in SCOPES}

    def move(self, old: bytes, new: bytes) -> None:
        """The peer ``old`` is ``new`` now (it rotated its key): its switches follow it."""
        with self._lock:
            self._db.execute("UPDATE OR REPLACE permissions SET fingerprint = ? WHERE fingerprint = ?", (new, old))
            self._cache = {((new if k[0] == old else k[0]), k[1]): v for k, v in self._cache.items()}

    def forget(self, fp: bytes) -> None:
        """Drop everything about a peer (on unpair)."""
        with self._lock:
            self._db.execute("DELETE FROM permissions WHERE fingerprint = ?", (fp,))
            self._cache = {k: v for k, v in self._cache.items() if k[0] != fp}

    def close(self) -> None:
        self._db.close()
