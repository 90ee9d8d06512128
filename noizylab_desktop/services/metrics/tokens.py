"""Bearer tokens for the HTTP API: shown once when created, stored only as a SHA-256 hash (SQLite, state folder).

A token is 32 random bytes, so a plain SHA-256 is enough: there is nothing to guess that a slow hash would protect.
One connection per store, shared by the HTTP server's threads under a lock; every check reads the table afresh, so
a ``noizylab token revoke`` in another process applies to the very next request.

Each token has scopes (``metrics``, ``tasks``, ``sync``; ``admin`` holds them all) that limit which endpoints it
reaches, and an expiry: 30 days unless asked, at most a year. Tokens made before scopes existed keep what they could
read then (``metrics``, ``tasks``, ``sync``, not ``admin``) and live 30 days from the upgrade (``docs/trust.md``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from noizylab_desktop.core.errors import TokenError

PREFIX = "nzl_"
USED_RESOLUTION_S = 60.0
DAY_S = 86400.0
DEFAULT_LIFE_S = 30 * DAY_S
MAX_LIFE_S = 365 * DAY_S
MIN_LIFE_S = 3600.0
SCOPES = ("metrics", "tasks", "sync", "admin")
ADMIN = "admin"
DEFAULT_SCOPES = ("metrics",)
# What a token made before scopes existed could read: every endpoint there was, none of them admin.
LEGACY_SCOPES = ("metrics", "tasks", "sync")
SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL,
    scopes TEXT,
    expires_at REAL
)
"""
COLUMNS = "id, name, created_at, revoked_at, last_used_at, scopes, expires_at"
_LIFE = re.compile(r"(\d+)\s*([dhw])")
_UNIT_S = {"h": 3600.0, "d": DAY_S, "w": 7 * DAY_S}


class Verdict(Enum):
    """What a presented token is worth for one endpoint."""

    VALID = "valid"
    UNKNOWN = "unknown"  # answered 401
    REVOKED = "revoked"  # answered 403
    EXPIRED = "expired"  # answered 403
    OUT_OF_SCOPE = "out of scope"  # answered 403


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without the token itself."""

    id: str
    name: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None
    scopes: tuple[str, ...]
    expires_at: float

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> TokenInfo:
        """A row of ``COLUMNS``."""
        token_id, name, created, revoked, used, scopes, expires = row
        return cls(
            str(token_id),
            str(name),
            _real(created),
            None if revoked is None else _real(revoked),
            None if used is None else _real(used),
            tuple(str(scopes).split(",")),
            _real(expires),
        )

    def allows(self, scope: str) -> bool:
        """Whether this token's scopes cover an endpoint of ``scope``."""
        return ADMIN in self.scopes or scope in self.scopes


def _real(value: object) -> float:
    assert isinstance(value, (int, float)), value
    return float(value)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_life(text: str) -> float:
    """``30d``, ``12h`` or ``2w`` as seconds; a one-line error outside one hour to 365 days."""
    found = _LIFE.fullmatch(text.strip().lower())
    life = int(found[1]) * _UNIT_S[found[2]] if found else 0.0
    if not MIN_LIFE_S <= life <= MAX_LIFE_S:
        raise TokenError(
            f"--expires {text!r} is not a life between 1h and 365d: give it as days, weeks or hours (30d, 2w, 12h)"
        )
    return life


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, each known, deduplicated in table order."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown token scope {unknown[0]!r}: choose from {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted) or DEFAULT_SCOPES


class TokenStore:
    """Create, list, revoke and check API tokens."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
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
                with db:
                    db.execute(SCHEMA)
                    self._migrate(db)
                self._db = db
            with self._db:
                yield self._db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Give tokens from before scopes and expiry what they could do then, for 30 days from now."""
        have = {row[1] for row in db.execute("PRAGMA table_info(tokens)")}
        for column, kind in (("scopes", "TEXT"), ("expires_at", "REAL")):
            if column not in have:
                db.execute(f"ALTER TABLE tokens ADD COLUMN {column} {kind}")
        db.execute("UPDATE tokens SET scopes = ? WHERE scopes IS NULL", (",".join(LEGACY_SCOPES),))
        db.execute("UPDATE tokens SET expires_at = ? WHERE expires_at IS NULL", (self.clock() + DEFAULT_LIFE_S,))

    def close(self) -> None:
        """Close the connection; the store opens it again if used."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def create(
        self, name: str | None = None, scopes: Iterable[str] = DEFAULT_SCOPES, life_s: float = DEFAULT_LIFE_S
    ) -> tuple[TokenInfo, str]:
        """A new token: its record, and the token itself (shown once, never stored)."""
        token_id = secrets.token_hex(4)
        name = f"token-{token_id}" if name is None else name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise TokenError("a token name must be 1 to 64 printable characters: choose another with --name")
        if not MIN_LIFE_S <= life_s <= MAX_LIFE_S:
            raise TokenError("a token lives between 1h and 365d: choose another --expires")
        now = self.clock()
        token = PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        info = TokenInfo(token_id, name, now, None, None, check_scopes(scopes), now + life_s)
        with self._connect() as db:
            live = "SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL AND expires_at > ?"
            if db.execute(live, (name, now)).fetchone():
                raise TokenError(f"a token named {name!r} exists already: pick another --name or revoke it first")
            db.execute(
                "INSERT INTO tokens (id, name, hash, created_at, scopes, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (info.id, info.name, digest(token), info.created_at, ",".join(info.scopes), info.expires_at),
            )
        return info, token

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first, revoked and expired ones included."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {COLUMNS} FROM tokens ORDER BY created_at").fetchall()
        return [TokenInfo.from_row(row) for row in rows]

    def revoke(self, ref: str) -> TokenInfo:
        """Revoke the token with this ID or name; a one-line error when none or several match."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM tokens WHERE (id = ? OR name = ?) AND revoked_at IS NULL", (ref, ref)
            ).fetchall()
            if not rows:
                raise TokenError(f"no active token has the ID or name {ref!r}: see `noizylab token list`")
            if len(rows) > 1:
                raise TokenError(f"{ref!r} names several tokens: revoke one by its ID (`noizylab token list`)")
            found = TokenInfo.from_row(rows[0])
            now = self.clock()
            db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now, found.id))
        return dataclasses.replace(found, revoked_at=now)

    def check(self, token: str, scope: str) -> Verdict:
        """Whether ``token`` may use an endpoint of ``scope`` now; remembers when a valid one was last used."""
        wanted = digest(token)
        with self._connect() as db:
            rows = db.execute(f"SELECT {COLUMNS}, hash FROM tokens WHERE hash = ?", (wanted,)).fetchall()
            for *row, stored in rows:
                if not hmac.compare_digest(stored, wanted):
                    continue
                info = TokenInfo.from_row(tuple(row))
                now = self.clock()
                if info.revoked_at is not None:
                    return Verdict.REVOKED
                if now >= info.expires_at:
                    return Verdict.EXPIRED
                if not info.allows(scope):
                    return Verdict.OUT_OF_SCOPE
                # "Last used" is for people: to the minute is enough, and saves a write per request.
                if now - self._used_written.get(info.id, 0.0) >= USED_RESOLUTION_S:
                    self._used_written[info.id] = now
                    db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, info.id))
                return Verdict.VALID
        return Verdict.UNKNOWN

    def scopes_of(self, token: str) -> tuple[str, ...]:
        """The scopes of ``token`` (empty when unknown), to tell a refused caller what it holds."""
        with self._connect() as db:
            row = db.execute("SELECT scopes FROM tokens WHERE hash = ?", (digest(token),)).fetchone()
        return tuple(str(row[0]).split(",")) if row else ()
