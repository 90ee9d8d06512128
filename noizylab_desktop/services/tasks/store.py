"""Task history in SQLite (WAL) under the state folder, on the node that ran a task and on the one that asked."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.core.errors import TaskError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    asker TEXT NOT NULL,
    runner TEXT NOT NULL,
    command TEXT NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    exit_code INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL NOT NULL DEFAULT 0,
    ended_at REAL NOT NULL DEFAULT 0,
    tail BLOB NOT NULL DEFAULT x'',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (created_at);
"""
_COLUMNS = [
    "id", "role", "asker", "runner", "command", "decided_by", "reason", "state",
    "exit_code", "created_at", "started_at", "ended_at", "tail", "error",
]  # fmt: skip


class TaskStore:
    """Thread-safe history; every write is its own transaction, so a crash loses at most the write in flight."""

    def __init__(self, path: Path, limit: int = 5000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._limit = limit
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # A task still "running" in the file ran when this node last stopped: its outcome is unknown.
        self._db.execute(
            "UPDATE tasks SET state='lost', error='this node stopped while the task ran', ended_at=? "
            "WHERE state='running'",
            (time.time(),),
        )

    def record(self, record: tpb.TaskRecord) -> None:
        """Insert or replace a task's row."""
        values = [getattr(record, c) for c in _COLUMNS]
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO tasks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                values,
            )

    def finish(self, task_id: str, state: str, exit_code: int, ended_at: float, tail: bytes, error: str = "") -> None:
        """Record how a task ended, and trim the oldest history past the limit."""
        with self._lock:
            self._db.execute(
                "UPDATE tasks SET state=?, exit_code=?, ended_at=?, tail=?, error=? WHERE id=?",
                (state, exit_code, ended_at, tail, error, task_id),
            )
            self._db.execute(
                "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
                (self._limit,),
            )

    def set_runner(self, task_id: str, runner: str, decided_by: str, reason: str) -> None:
        """A re-routed task's new node."""
        with self._lock:
            self._db.execute(
                "UPDATE tasks SET runner=?, decided_by=?, reason=? WHERE id=?", (runner, decided_by, reason, task_id)
            )

    def recent(self, limit: int = 50) -> list[tpb.TaskRecord]:
        """The newest tasks first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM tasks ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row(r) for r in rows]

    def find(self, ref: str) -> tpb.TaskRecord:
        """The task whose ID is or starts with ``ref``, or a one-line error."""
        ref = ref.strip()
        if not ref:
            raise TaskError("give a task ID: see `noizylab tasks`")
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM tasks WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
            ).fetchall()
        if not rows:
            raise TaskError(f"no task matches {ref!r}: see `noizylab tasks`")
        if len(rows) > 1:
            raise TaskError(f"{ref!r} matches several tasks: give more of the ID")
        return _row(rows[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(row: tuple[object, ...]) -> tpb.TaskRecord:
    record = tpb.TaskRecord()
    for column, value in zip(_COLUMNS, row, strict=True):
        setattr(record, column, bytes(value) if isinstance(value, bytes | memoryview) else value)
    return record
