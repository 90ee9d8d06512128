"""Bearer tokens for the HTTP API: shown once when created, stored only as a SHA-256 hash (SQLite, state folder).

A token is 32 random bytes, so a plain SHA-256 is enough: there is nothing to guess that a slow hash would protect.
One connection per store, shared by the HTTP server's threads under a lock; every check reads the table afresh, so
a ``noizylab token revoke`` in another process applies to the very next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from noizylab_desktop.core.errors import TokenError

PREFIX = "nzl_"
USED_RESOLUTION_S = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL
)
"""


class Verdict(Enum):
    """What a presented token is worth."""

    VALID = "valid"
    UNKNOWN = "unknown"  # answered 401
    REVOKED = "revoked"  # answered 403


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without the token itself."""

    id: str
    name: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    """Create, list, revoke and check API tokens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._used_written: dict[str, float] = {}

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The store's connection, held by this thread until the block ends (and committed if it succeeds)."""
        with self._lock:
            if self._db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, no fsync per check
                db.execute(SCHEMA)
                self._db = db
            with self._db:
                yield self._db

    def close(self) -> None:
        """Close the connection; the store opens it again if used."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def create(self, name: str | None = None) -> tuple[TokenInfo, str]:
        """A new token: its record, and the token itself (shown once, never stored)."""
        token_id = secrets.token_hex(4)
        name = f"token-{token_id}" if name is None else name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise TokenError("a token name must be 1 to 64 printable characters: choose another with --name")
        token = PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        info = TokenInfo(token_id, name, time.time(), None, None)
        with self._connect() as db:
            if db.execute("SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone():
                raise TokenError(f"a token named {name!r} exists already: pick another --name or revoke it first")
            db.execute(
                "INSERT INTO tokens (id, name, hash, created_at) VALUES (?, ?, ?, ?)",
                (info.id, info.name, digest(token), info.created_at),
            )
        return info, token

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first, revoked ones included."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, created_at, revoked_at, last_used_at FROM tokens ORDER BY created_at"
            ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def revoke(self, ref: str) -> TokenInfo:
        """Revoke the token with this ID or name; a one-line error when none or several match."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, created_at, revoked_at, last_used_at FROM tokens "
                "WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
                (ref, ref),
            ).fetchall()
            if not rows:
                raise TokenError(f"no active token has the ID or name {ref!r}: see `noizylab token list`")
            if len(rows) > 1:
                raise TokenError(f"{ref!r} names several tokens: revoke one by its ID (`noizylab token list`)")
            found = TokenInfo(*rows[0])
            now = time.time()
            db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now, found.id))
        return TokenInfo(found.id, found.name, found.created_at, now, found.last_used_at)

    def check(self, token: str) -> Verdict:
        """Whether ``token`` may use the API now; remembers when a valid one was last used."""
        wanted = digest(token)
        with self._connect() as db:
            rows = db.execute("SELECT id, hash, revoked_at FROM tokens WHERE hash = ?", (wanted,)).fetchall()
            for token_id, stored, revoked_at in rows:
                if hmac.compare_digest(stored, wanted):
                    if revoked_at is not None:
                        return Verdict.REVOKED
                    now = time.time()
                    # "Last used" is for people: to the minute is enough, and saves a write per request.
                    if now - self._used_written.get(token_id, 0.0) >= USED_RESOLUTION_S:
                        self._used_written[token_id] = now
                        db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
                    return Verdict.VALID
        return Verdict.UNKNOWN
