"""Per-share SQLite index: the local scan cache (path, size, mtime, inode, block hashes), the remote one for plain
SSH targets, the common ancestor with each file's version vector, the ancestor's content for text files (keyed by
SHA-256, for three-way merges) and the unresolved conflicts.

The scan cache lets a rescan skip hashing files whose size, mtime and inode did not change; the ancestor is what
both sides held after the last sync (the planner's third input). Each change is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from noizylab_desktop.services.sync.planner import Entry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_cache (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, hash BLOB, blocks BLOB);
CREATE TABLE IF NOT EXISTS remote_cache (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, hash BLOB, blocks BLOB);
CREATE TABLE IF NOT EXISTS ancestor (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, hash BLOB, blocks BLOB, version TEXT);
CREATE TABLE IF NOT EXISTS ancestor_text (hash BLOB PRIMARY KEY, data BLOB);
CREATE TABLE IF NOT EXISTS unresolved (
    id TEXT PRIMARY KEY, path TEXT, copy TEXT, at REAL, file_from TEXT, copy_from TEXT, file_hash BLOB,
    copy_hash BLOB, base BLOB, proposal BLOB, proposal_for BLOB);
"""


def one(digest: bytes, blocks: bytes) -> bytes:
    """``blocks``, or ``digest`` itself where they are equal (a one-block file: its block hash is its hash): one
    bytes object instead of two for most files of a home folder."""
    return digest if blocks == digest else blocks


@dataclass(frozen=True, slots=True)
class Cached:
    """A scanned file: its stat as last seen and the hashes computed then."""

    entry: Entry
    inode: int


class ShareIndex:
    """One share's index file; safe to use from the loop and worker threads (one lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ scan caches

    def local_cache(self) -> dict[str, Cached]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, inode, hash, blocks FROM local_cache").fetchall()
        return {r[0]: Cached(Entry(r[0], r[1], r[2], r[4], one(r[4], r[5])), r[3]) for r in rows}

    def local_cached(self, paths: Iterable[str]) -> dict[str, Cached]:
        """The local cache's rows of ``paths`` only (a watcher's batch), not the whole cache: at 100,000 files
        loading it all took longer than the change it was checked for."""
        wanted = list(paths)
        out = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = (
                    "SELECT path, size, mtime_ns, inode, hash, blocks FROM local_cache"
                    f" WHERE path IN ({','.join('?' * len(chunk))})"
                )
                for r in self._db.execute(query, chunk):
                    out[r[0]] = Cached(Entry(r[0], r[1], r[2], r[4], one(r[4], r[5])), r[3])
        return out

    def local_bytes(self, without: Iterable[str] = ()) -> int:
        """The size of every file in the local cache, less those in ``without`` (files about to be replaced)."""
        with self._lock:
            total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM local_cache").fetchone()[0]
            for path in set(without):
                row = self._db.execute("SELECT size FROM local_cache WHERE path = ?", (path,)).fetchone()
                total -= row[0] if row else 0
        return int(total)

    def put_local(self, rows: Iterable[Cached], gone: Iterable[str] = ()) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO local_cache VALUES (?, ?, ?, ?, ?, ?)",
                [(c.entry.path, c.entry.size, c.entry.mtime_ns, c.inode, c.entry.hash, c.entry.blocks) for c in rows],
            )
            self._db.executemany("DELETE FROM local_cache WHERE path = ?", [(p,) for p in gone])

    def remote_cache(self) -> dict[str, Entry]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, hash, blocks FROM remote_cache").fetchall()
        return {r[0]: Entry(r[0], r[1], r[2], r[3], one(r[3], r[4])) for r in rows}

    def put_remote(self, rows: Iterable[Entry], gone: Iterable[str] = ()) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO remote_cache VALUES (?, ?, ?, ?, ?)",
                [(e.path, e.size, e.mtime_ns, e.hash, e.blocks) for e in rows],
            )
            self._db.executemany("DELETE FROM remote_cache WHERE path = ?", [(p,) for p in gone])

    # ------------------------------------------------------------------ ancestor

    def ancestor(self, known: Mapping[str, Entry] | None = None) -> dict[str, Entry]:
        """Every ancestor row; where ``known`` (this pass's scan) holds an equal entry, that very object: a share in
        sync then holds one entry per file for both, not two."""
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, hash, blocks FROM ancestor").fetchall()
        out = {}
        for path, size, mtime_ns, digest, blocks in rows:
            same = known.get(path) if known is not None else None
            if same is None or (same.size, same.mtime_ns, same.hash, same.blocks) != (size, mtime_ns, digest, blocks):
                same = Entry(path, size, mtime_ns, digest, one(digest, blocks))
            out[same.path] = same
        return out

    def version(self, path: str) -> dict[str, int]:
        with self._lock:
            row = self._db.execute("SELECT version FROM ancestor WHERE path = ?", (path,)).fetchone()
        return dict(json.loads(row[0])) if row and row[0] else {}

    def set_ancestor(self, entry: Entry, changed_by: str | None) -> None:
        """Record ``entry`` as synced; ``changed_by`` (a node name) bumps its counter in the version vector."""
        version = self.version(entry.path)
        if changed_by:
            version[changed_by] = version.get(changed_by, 0) + 1
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO ancestor VALUES (?, ?, ?, ?, ?, ?)",
                (entry.path, entry.size, entry.mtime_ns, entry.hash, entry.blocks, json.dumps(version)),
            )

    def set_ancestors(self, entries: list[Entry], changed_by: str | None) -> None:
        """``set_ancestor`` for many files in one transaction (a batch of small files: one commit, not thousands)."""
        with self._lock:
            versions: dict[str, dict[str, int]] = {}
            for start in range(0, len(entries), 500):
                paths = [e.path for e in entries[start : start + 500]]
                marks = ",".join("?" * len(paths))
                query = f"SELECT path, version FROM ancestor WHERE path IN ({marks})"
                for path, version in self._db.execute(query, paths):
                    versions[path] = dict(json.loads(version)) if version else {}
        rows = []
        for e in entries:
            version = versions.get(e.path, {})
            if changed_by:
                version[changed_by] = version.get(changed_by, 0) + 1
            rows.append((e.path, e.size, e.mtime_ns, e.hash, e.blocks, json.dumps(version)))
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO ancestor VALUES (?, ?, ?, ?, ?, ?)", rows)

    def drop_ancestor(self, path: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM ancestor WHERE path = ?", (path,))

    # ------------------------------------------------------------------ ancestor texts (for merges)

    def put_texts(self, texts: Iterable[tuple[bytes, bytes]], prune: bool = True) -> None:
        """Keep (SHA-256, content) pairs of settled text files, then (``prune``) drop the ones no ancestor row refers
        to."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO ancestor_text VALUES (?, ?)", list(texts))
            if prune:
                self._db.execute("DELETE FROM ancestor_text WHERE hash NOT IN (SELECT hash FROM ancestor)")

    def text(self, digest: bytes) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM ancestor_text WHERE hash = ?", (digest,)).fetchone()
        return bytes(row[0]) if row else None

    # ------------------------------------------------------------------ unresolved conflicts

    def put_unresolved(self, c: Unresolved) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO unresolved VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.id, c.path, c.copy, c.at, c.file_from, c.copy_from, c.file_hash, c.copy_hash, c.base, None, None),
            )

    def unresolved(self) -> list[Unresolved]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, copy, at, file_from, copy_from, file_hash, copy_hash, base FROM unresolved"
                " ORDER BY at"
            ).fetchall()
        return [Unresolved(*r) for r in rows]

    def set_proposal(self, conflict_id: str, proposal: bytes | None, made_for: bytes | None) -> None:
        """Keep the merge last shown for a conflict, with the hash of the file and copy it was made for."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE unresolved SET proposal = ?, proposal_for = ? WHERE id = ?", (proposal, made_for, conflict_id)
            )

    def proposal(self, conflict_id: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT proposal, proposal_for FROM unresolved WHERE id = ? AND proposal IS NOT NULL", (conflict_id,)
            ).fetchone()
        return (bytes(row[0]), bytes(row[1])) if row else None

    def drop_unresolved(self, conflict_id: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM unresolved WHERE id = ?", (conflict_id,))


@dataclass(frozen=True)
class Unresolved:
    """A text conflict left as a conflict copy: ``path`` holds ``file_hash`` (from node ``file_from``), ``copy``
    holds ``copy_hash`` (from ``copy_from``); ``base`` is their common ancestor's content when it was kept."""

    id: str
    path: str
    copy: str
    at: float
    file_from: str
    copy_from: str
    file_hash: bytes
    copy_hash: bytes
    base: bytes | None
