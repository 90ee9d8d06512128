"""Merges during a sync: keeps the content of settled text files as their common ancestor, turns a concurrent edit
of a text file into a three-way merge when it is clean, and records the ones that are not as unresolved.

The driving node holds the ancestors (in the share's index, keyed by SHA-256, dropped once no ancestor row refers
to them); the serving side keeps nothing extra. A clean merge is written here (temp, verify, rename) and pushed,
and each side's original goes to its versions folder first, as every replaced file does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import hash_bytes, hash_file
from noizylab_desktop.services.sync.index import ShareIndex, Unresolved
from noizylab_desktop.services.sync.localfs import temp_name
from noizylab_desktop.services.sync.merge import DEFAULT_MAX_BYTES, looks_like_text, merge_text
from noizylab_desktop.services.sync.planner import Action, Entry, Plan

if TYPE_CHECKING:
    from noizylab_desktop.services.sync.executor import Executor, Progress

logger = logging.getLogger(__name__)

TEXTS_HELD = 16 * 1024 * 1024  # settled texts are written to the index in parts of about this size
# The entry each kind of action leaves on both sides, by which side it came from.
_SETTLED = {"push": "local", "record": "local", "rename_remote": "local", "pull": "remote", "rename_local": "remote"}


class Merger:
    """One share's merge step, used by its executor for each conflict and by its engine after each pass."""

    def __init__(self, index: ShareIndex, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.index = index
        self.max_bytes = max_bytes
        self._texts: dict[str, tuple[bytes, bytes, bytes | None]] = {}  # path → (local, remote, base) of a conflict
        self._merged: list[tuple[bytes, bytes]] = []

    async def merge(self, ex: Executor, a: Action) -> bool:
        """Merge a concurrent edit of a text file when it is clean (True); False leaves it to a conflict copy."""
        assert a.local is not None and a.remote is not None
        self._texts.pop(a.path, None)
        if max(a.local.size, a.remote.size) > self.max_bytes:
            return False
        mine = await asyncio.to_thread(ex.fs.path(a.path).read_bytes)
        if hashlib.sha256(mine).digest() != a.local.hash or not looks_like_text(mine, self.max_bytes):
            return False  # changed since the scan (the copy step notices) or not text
        theirs = b"".join([data async for _, data in ex.remote.stream(a.path)])
        if hashlib.sha256(theirs).digest() != a.remote.hash or not looks_like_text(theirs, self.max_bytes):
            return False
        base = self.index.text(a.base.hash) if a.base is not None else None
        self._texts[a.path] = (mine, theirs, base)
        if base is None:
            return False
        merged = await asyncio.to_thread(merge_text, base, mine, theirs, (ex.local_name, ex.remote.name))
        if not merged.clean:
            return False
        await self._write(ex, a, merged.data)
        logger.info("merged concurrent edits of %s", a.path)
        return True

    async def _write(self, ex: Executor, a: Action, data: bytes) -> None:
        """The merged text here (temp, fsync, verify, original to versions, rename), then on the other side."""
        hashed = hash_bytes(data)
        now = time.time_ns()
        tmp = ex.fs.path(temp_name(a.path))

        def write() -> None:
            fd = ex.fs.open_write(tmp)
            ex.fs.pwrite(fd, data, 0)
            ex.fs.close(fd, len(data))

        await asyncio.to_thread(write)
        if (await asyncio.to_thread(hash_file, tmp)).digest != hashed.digest:
            tmp.unlink(missing_ok=True)
            raise SyncError(f"the merge of {a.path} did not verify on disk; retrying")
        ex._check_local(a.path, a.local)
        st = await asyncio.to_thread(ex.fs.replace, tmp, ex.fs.path(a.path), now, a.path)
        entry = Entry(a.path, len(data), now, hashed.digest, hashed.blocks)
        ex._cache(a.path, entry, st)
        await ex.push(a.path, entry, a.remote)  # keeps the other side's original as a version first
        ex.index.set_ancestor(entry, ex.local_name)
        self._merged.append((hashed.digest, data))

    def unresolved(self, a: Action, ex: Executor) -> None:
        """Record a text conflict that became a conflict copy, so a merge can be proposed later."""
        texts = self._texts.pop(a.path, None)
        if texts is None or a.local is None or a.remote is None:
            return
        base = texts[2]
        local_wins = a.winner == "local"
        file_from, copy_from = (ex.local_name, ex.remote.name) if local_wins else (ex.remote.name, ex.local_name)
        file_hash, copy_hash = (a.local.hash, a.remote.hash) if local_wins else (a.remote.hash, a.local.hash)
        record = Unresolved(
            secrets.token_hex(4), a.path, a.copy_path, time.time(), file_from, copy_from, file_hash, copy_hash, base
        )
        self.index.put_unresolved(record)

    def settled(self, read: Callable[[str], bytes], plan: Plan, progress: Progress) -> None:
        """Keep the content of the text files this pass settled as their new ancestor (blocking: run in a thread)."""
        texts = list(self._merged)
        self._merged.clear()
        held = 0
        if self.max_bytes > 0:
            for entry in _settled_entries(plan, progress):
                if entry.size > self.max_bytes:
                    continue
                try:
                    data = read(entry.path)
                except OSError:
                    continue
                digest = hashlib.sha256(data).digest()
                # A new file pushed unhashed (deferred.py) has no hash in the plan: its text is kept under its own.
                if digest == (entry.hash or digest) and looks_like_text(data, self.max_bytes):
                    texts.append((digest, data))
                    held += len(data)
                    if held >= TEXTS_HELD:  # a pass that settled a home folder's texts holds this much at most
                        self.index.put_texts(texts, prune=False)
                        texts, held = [], 0
        if texts or plan.work:
            self.index.put_texts(texts)


def _settled_entries(plan: Plan, progress: Progress) -> list[Entry]:
    """What each successful action of the plan left on both sides (both files of a conflict)."""
    out: list[Entry] = []
    for a in plan.actions:
        if a.path in progress.failed:
            continue
        side = _SETTLED.get(a.kind)
        if side is not None:
            entry = a.local if side == "local" else a.remote
            if entry is not None:
                out.append(Entry(a.path, entry.size, entry.mtime_ns, entry.hash))
        elif a.kind == "conflict" and a.local is not None and a.remote is not None and a.path not in progress.merged:
            winner, loser = (a.local, a.remote) if a.winner == "local" else (a.remote, a.local)
            out.append(Entry(a.path, winner.size, winner.mtime_ns, winner.hash))
            out.append(Entry(a.copy_path, loser.size, loser.mtime_ns, loser.hash))
    return out
