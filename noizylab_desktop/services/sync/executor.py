"""Applies a plan: transfers (``transfers.py``, and ``batches.py`` for small files with a NOIZYLAB peer), renames,
deletes and conflict copies, each verified by hash before it becomes visible, and each recorded in the index when
done.

Renames and conflicts run first, one by one; transfers and deletes then run in parallel. A failed action leaves
its final path untouched and is retried by the next cycle (temp files are kept so the transfer resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.batches import BATCH_FILE, pull_batched, push_batched
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs
from noizylab_desktop.services.sync.planner import Action, Entry, Plan, change_line
from noizylab_desktop.services.sync.remote import PARALLEL_FILES, PeerStore, RemoteStore, RemoteUnreachable
from noizylab_desktop.services.sync.transfers import ChangedMeanwhile, Transfers, action_bytes

__all__ = ["BATCH_FILE", "ChangedMeanwhile", "ConflictMerger", "Executor", "Progress"]

logger = logging.getLogger(__name__)

# Whole files larger than a batched one move at most this many at a time, whatever PARALLEL_FILES allows for the
# rest: each stream holds chunks in flight on both nodes, and 64 of them (a home folder's photos) took each node
# past 450 MB at its peak, where a few already keep the disk and the link busy.
PARALLEL_LARGE = 4


@dataclass
class Progress:
    """Bytes of the current plan's transfers: done and total (for the tray's progress)."""

    total: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)


class ConflictMerger(Protocol):
    """Tries a three-way merge before a conflict copy is made (``services/sync/merging.py``)."""

    async def merge(self, ex: Executor, action: Action) -> bool: ...

    def unresolved(self, action: Action, ex: Executor) -> None: ...


class Executor(Transfers):
    """Applies plans for one share."""

    def __init__(
        self,
        fs: LocalFs,
        index: ShareIndex,
        remote: RemoteStore,
        local_name: str,
        on_progress: Callable[[Progress], None] = lambda p: None,
        merger: ConflictMerger | None = None,
    ) -> None:
        super().__init__(fs, index, remote)
        self.merger = merger
        self.local_name = local_name
        self.on_progress = on_progress
        self.progress = Progress()

    async def run(self, plan: Plan) -> Progress:
        self.progress = Progress(total=sum(action_bytes(a) for a in plan.actions))
        first = [a for a in plan.actions if a.kind in ("rename_local", "rename_remote", "conflict")]
        remote = self.remote
        batched: list[Action] = []
        pulled: list[Action] = []
        if isinstance(remote, PeerStore):  # small files go many to a call to a NOIZYLAB peer
            if remote.batch_puts:
                batched = [a for a in plan.actions if a.kind == "push" and a.local and a.local.size <= BATCH_FILE]
            pulled = [a for a in plan.actions if a.kind == "pull" and a.remote and a.remote.size <= BATCH_FILE]
        apart = {id(a) for a in first} | {id(a) for a in batched} | {id(a) for a in pulled}  # plans can be huge
        rest = [a for a in plan.actions if id(a) not in apart]
        for action in first:
            await self._guarded(action)
            if not self.remote.connected:
                raise RemoteUnreachable(f"lost the connection to {self.remote.name}")
        if batched and isinstance(remote, PeerStore):
            # After the renames: a case-only rename must not land on a file pushed under its new name.
            await push_batched(self, remote, batched)
        if pulled and isinstance(remote, PeerStore):  # likewise: a pull must not land where a rename is still to happen
            await pull_batched(self, remote, pulled)
        gate, large = asyncio.Semaphore(PARALLEL_FILES), asyncio.Semaphore(PARALLEL_LARGE)

        async def one(action: Action) -> None:
            big = action.kind in ("push", "pull") and action_bytes(action) > BATCH_FILE
            async with large if big else contextlib.nullcontext(), gate:
                await self._guarded(action)

        # A lost connection ends the pass at once (the TaskGroup cancels the other transfers); the engine retries.
        try:
            async with asyncio.TaskGroup() as group:
                for action in rest:
                    group.create_task(one(action))
        except* RemoteUnreachable as lost:
            raise lost.exceptions[0] from None
        return self.progress

    async def _guarded(self, action: Action) -> None:
        try:
            await self._apply(action)
            if action.kind not in ("record", "forget"):
                merged = action.kind == "conflict" and action.path in self.progress.merged
                kind = "merged" if merged else action.kind
                self.progress.changed.append(change_line(kind, action.path, self.remote.name, action.source))
        except ChangedMeanwhile as exc:
            logger.debug("%s: %s", action.path, exc.message)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                message = f"disk full in {self.fs.root}: free space there; the transfer resumes then"
            else:
                message = f"{exc.strerror or exc} ({action.kind})"
            self.progress.failed[action.path] = message
            logger.warning("sync of %s failed: %s", action.path, message)
        except RemoteUnreachable:
            raise
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
            raise RemoteUnreachable(f"lost the connection to {self.remote.name}: {exc.reason}") from exc
        except (SyncError, asyncssh.Error) as exc:
            message = exc.message if isinstance(exc, SyncError) else str(exc.reason)
            self.progress.failed[action.path] = message
            logger.warning("sync of %s failed: %s", action.path, message)
        finally:
            self.progress.done += action_bytes(action)
            self.on_progress(self.progress)
        if not self.remote.connected:
            raise RemoteUnreachable(f"lost the connection to {self.remote.name}")

    async def _apply(self, a: Action) -> None:
        if a.kind == "pull":
            assert a.remote is not None
            await self.pull(a.path, a.remote, a.local)
            self.index.set_ancestor(a.remote, self.remote.name)
        elif a.kind == "push":
            assert a.local is not None
            pushed = await self.push(a.path, a.local, a.remote)
            self.index.set_ancestor(pushed, self.local_name)
        elif a.kind == "delete_local":
            self._check_local(a.path, a.local)
            await asyncio.to_thread(self.fs.remove_to_versions, a.path)
            self.index.put_local([], [a.path])
            self.index.drop_ancestor(a.path)
        elif a.kind == "delete_remote":
            assert a.remote is not None
            await self.remote.keep_version(a.path)
            await self.remote.remove(a.path)
            self.index.drop_ancestor(a.path)
        elif a.kind == "rename_local":
            assert a.remote is not None and a.local is not None
            self._check_local(a.source, a.local)
            st = await asyncio.to_thread(self.fs.rename, a.source, a.path)
            self._cache(a.path, a.local, st)
            self.index.put_local([], [a.source])
            self.index.drop_ancestor(a.source)
            self.index.set_ancestor(a.remote, self.remote.name)
        elif a.kind == "rename_remote":
            assert a.local is not None
            await self.remote.rename(a.source, a.path)
            self.index.drop_ancestor(a.source)
            self.index.set_ancestor(a.local, self.local_name)
        elif a.kind == "conflict":
            if self.merger is not None and await self.merger.merge(self, a):
                self.progress.merged.append(a.path)
                return
            await self._conflict(a)
            if self.merger is not None:
                self.merger.unresolved(a, self)
        elif a.kind == "record":
            assert a.local is not None
            self.index.set_ancestor(a.local, None)
        elif a.kind == "forget":
            self.index.drop_ancestor(a.path)

    async def _conflict(self, a: Action) -> None:
        assert a.local is not None and a.remote is not None
        copy = a.copy_path
        if a.winner == "local":
            # The remote version becomes the copy on both sides; the local one then takes the name there.
            await self.remote.rename(a.path, copy)
            copied = Entry(copy, a.remote.size, a.remote.mtime_ns, a.remote.hash, a.remote.blocks)
            await self.pull(copy, copied, None)
            self.index.set_ancestor(copied, self.remote.name)
            await self.push(a.path, a.local, copied, base=copy)
            self.index.set_ancestor(a.local, self.local_name)
        else:
            self._check_local(a.path, a.local)
            st = await asyncio.to_thread(self.fs.rename, a.path, copy)
            copied = Entry(copy, a.local.size, a.local.mtime_ns, a.local.hash, a.local.blocks)
            self._cache(copy, copied, st)
            self.index.put_local([], [a.path])
            await self.push(copy, copied, a.remote, base=a.path)
            self.index.set_ancestor(copied, self.local_name)
            await self.pull(a.path, a.remote, None, basis=copy)
            self.index.set_ancestor(a.remote, self.remote.name)
        self.progress.conflicts.append(copy)
