"""Per-share SQLite index: the local scan cache (path, size, mtime, inode, block hashes), the remote one for plain
SSH targets, and the common ancestor with each file's version vector.

The scan cache lets a rescan skip hashing files whose size, mtime and inode did not change; the ancestor is what
both sides held after the last sync (the planner's third input). Each change is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
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
"""


@dataclass(frozen=True)
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
        return {r[0]: Cached(Entry(r[0], r[1], r[2], r[4], r[5]), r[3]) for r in rows}

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
        return {r[0]: Entry(*r) for r in rows}

    def put_remote(self, rows: Iterable[Entry], gone: Iterable[str] = ()) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO remote_cache VALUES (?, ?, ?, ?, ?)",
                [(e.path, e.size, e.mtime_ns, e.hash, e.blocks) for e in rows],
            )
            self._db.executemany("DELETE FROM remote_cache WHERE path = ?", [(p,) for p in gone])

    # ------------------------------------------------------------------ ancestor

    def ancestor(self) -> dict[str, Entry]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, hash, blocks FROM ancestor").fetchall()
        return {r[0]: Entry(*r) for r in rows}

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
