"""Applies a plan: transfers (block deltas between NOIZYLAB peers, whole files otherwise), renames, deletes and
conflict copies, each verified by hash before it becomes visible, and each recorded in the index when done.

Renames and conflicts run first, one by one; transfers and deletes then run in parallel. A failed action leaves
its final path untouched and is retried by the next cycle (temp files are kept so the transfer resumes).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, DIGEST_SIZE, changed_blocks, hash_file
from noizylab_desktop.services.sync.deferred import racy, read_for_push
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, temp_name, write_files
from noizylab_desktop.services.sync.planner import Action, Entry, Plan
from noizylab_desktop.services.sync.receive import FileHeader, receive
from noizylab_desktop.services.sync.remote import (
    PARALLEL_FILES,
    ChangedWhileSent,
    Remote,
    RemoteUnreachable,
    SmallFiles,
)

logger = logging.getLogger(__name__)

BATCH_FILE = 256 * 1024  # pushes up to this size go many to a call to NOIZYLAB peers
BATCH_BYTES = 2 * 1024 * 1024  # per call (gRPC messages are capped at 4 MiB)
BATCH_FILES, FIRST_BATCH_FILES = 1000, 100  # files per call
SMALL_FILE = 1024 * 1024  # up to this size a file is pushed from memory in one write
BATCH_BLOCKS = 64  # 8 MiB in flight per file: deep enough for parallel reads, small enough for many files at once


class ChangedMeanwhile(SyncError):
    """A file changed while its action was under way; the next cycle decides again."""


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


class Executor:
    """Applies plans for one share."""

    def __init__(
        self,
        fs: LocalFs,
        index: ShareIndex,
        remote: Remote,
        local_name: str,
        on_progress: Callable[[Progress], None] = lambda p: None,
        merger: ConflictMerger | None = None,
    ) -> None:
        self.fs = fs
        self.merger = merger
        self.index = index
        self.remote = remote
        self.local_name = local_name
        self.on_progress = on_progress
        self.progress = Progress()

    async def run(self, plan: Plan) -> Progress:
        self.progress = Progress(total=sum(_bytes(a) for a in plan.actions))
        first = [a for a in plan.actions if a.kind in ("rename_local", "rename_remote", "conflict")]
        batched = [
            a
            for a in plan.actions
            if self.remote.peer_put is not None and a.kind == "push" and a.local and a.local.size <= BATCH_FILE
        ]
        pulled = [
            a
            for a in plan.actions
            if self.remote.peer_get is not None and a.kind == "pull" and a.remote and a.remote.size <= BATCH_FILE
        ]
        apart = {id(a) for a in first} | {id(a) for a in batched} | {id(a) for a in pulled}  # plans can be huge
        rest = [a for a in plan.actions if id(a) not in apart]
        for action in first:
            await self._guarded(action)
            if not self.remote.connected:
                raise RemoteUnreachable(f"lost the connection to {self.remote.name}")
        if batched:  # after the renames: a case-only rename must not land on a file pushed under its new name
            await self._push_batched(batched)
        if pulled:  # likewise: a pull must not land where a rename is still to happen
            await self._pull_batched(pulled)
        gate = asyncio.Semaphore(PARALLEL_FILES)

        async def one(action: Action) -> None:
            async with gate:
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
                self.progress.changed.append(f"{'merged' if merged else action.kind} {action.path}")
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
            self.progress.done += _bytes(action)
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

    async def _push_batched(self, actions: list[Action]) -> None:
        """Small pushes to a NOIZYLAB peer, many files per call: read and hashed here, checked again there."""
        chunks: list[list[Action]] = [[]]
        size = 0
        for action in actions:
            assert action.local is not None
            # The first batch is small, so the peer starts writing while this side still reads the next ones.
            count = FIRST_BATCH_FILES if len(chunks) == 1 else BATCH_FILES
            if chunks[-1] and (size + action.local.size > BATCH_BYTES or len(chunks[-1]) >= count):
                chunks.append([])
                size = 0
            chunks[-1].append(action)
            size += action.local.size
        # Two calls in flight, and the next batch read and hashed meanwhile, so the peer never waits for this side;
        # at most three batches are held in memory. Reads go one at a time: the first batch is then ready soonest.
        held, reading, sending = asyncio.Semaphore(3), asyncio.Lock(), asyncio.Semaphore(2)

        async def one(chunk: list[Action]) -> None:
            async with held:
                async with reading:
                    files = await asyncio.to_thread(read_for_push, self.fs, self.index, chunk)
                try:
                    async with sending:
                        failed = await self.remote.put_files([f for _, f in files])
                except SyncError as exc:
                    raise RemoteUnreachable(exc.message) from exc
                landed = []
                for action, _ in files:
                    if action.path in failed:
                        self.progress.failed[action.path] = failed[action.path]
                    else:
                        assert action.local is not None
                        landed.append(action.local)
                        self.progress.changed.append(f"push {action.path}")
                await asyncio.to_thread(self.index.set_ancestors, landed, self.local_name)
                self.progress.done += sum(_bytes(a) for a in chunk)
                self.on_progress(self.progress)

        try:
            async with asyncio.TaskGroup() as group:
                for chunk in chunks:
                    group.create_task(one(chunk))
        except* RemoteUnreachable as lost:
            raise lost.exceptions[0] from None

    async def _pull_batched(self, actions: list[Action]) -> None:
        """Small pulls from a NOIZYLAB peer, many files per call: read and hashed there, checked here before they
        become visible; a file the peer could not read fails alone, with its reason."""
        wanted = {a.path: a for a in actions}
        gate = asyncio.Semaphore(2)

        async def one(chunk: list[Action]) -> None:
            async with gate:
                try:
                    async for files, failed in self.remote.get_files([a.path for a in chunk]):
                        await asyncio.to_thread(self._land, files, failed, wanted)
                        self.on_progress(self.progress)
                except SyncError as exc:
                    raise RemoteUnreachable(exc.message) from exc

        try:
            async with asyncio.TaskGroup() as group:
                for start in range(0, len(actions), 1000):
                    group.create_task(one(actions[start : start + 1000]))
        except* RemoteUnreachable as lost:
            raise lost.exceptions[0] from None

    def _land(self, files: SmallFiles, failed: dict[str, str], wanted: dict[str, Action]) -> None:
        """Pulled small files into place (in a worker thread): each checked against the planned hash, none over
        a local file that changed since the scan; then recorded as synced in one transaction."""
        for rel, why in failed.items():
            self.progress.failed[rel] = why
        ready: SmallFiles = []
        for rel, data, digest, _ in files:
            action = wanted.get(rel)
            if action is None or action.remote is None:
                continue
            self.progress.done += len(data)
            if digest != action.remote.hash:
                logger.debug("%s changed on %s meanwhile; the next pass takes it", rel, self.remote.name)
                continue
            try:
                self._check_local(rel, action.local)
            except ChangedMeanwhile as exc:
                logger.debug("%s: %s", rel, exc.message)
                continue
            except SyncError as exc:  # e.g. a link here leads out of the share: this file fails, the rest land
                self.progress.failed[rel] = exc.message
                continue
            ready.append((rel, data, action.remote.hash, action.remote.mtime_ns))  # verified again as written
        not_written = write_files(self.fs.root, ready, self.index, self.fs)
        self.progress.failed.update(not_written)
        landed = [wanted[rel].remote for rel, *_ in ready if rel not in not_written]
        self.index.set_ancestors([e for e in landed if e is not None], self.remote.name)
        self.progress.changed.extend(f"pull {rel}" for rel, *_ in ready if rel not in not_written)

    # ------------------------------------------------------------------ transfers

    def _check_local(self, rel: str, expected: Entry | None) -> None:
        """Refuse to replace a local file that changed since the scan the plan came from."""
        try:
            st = os.stat(self.fs.path(rel))
        except FileNotFoundError:
            if expected is None:
                return
            raise ChangedMeanwhile(f"{rel} disappeared meanwhile") from None
        if expected is None or (st.st_size, st.st_mtime_ns) != (expected.size, expected.mtime_ns):
            raise ChangedMeanwhile(f"{rel} changed meanwhile")

    def _cache(self, rel: str, entry: Entry, st: os.stat_result) -> None:
        """Record our own write in the scan cache, so the watcher and the next scan see nothing new."""
        mine = Entry(rel, st.st_size, st.st_mtime_ns, entry.hash, entry.blocks)
        self.index.put_local([Cached(mine, st.st_ino)])

    async def pull(self, rel: str, want: Entry, have: Entry | None, basis: str | None = None) -> None:
        """Make the local ``rel`` hold ``want``, fetching only blocks that the temp or old file lacks."""
        tmp = self.fs.path(temp_name(rel))
        final = self.fs.path(rel)
        base_path = self.fs.path(basis) if basis else final
        fd = -1
        resume = 0
        if (
            self.remote.peer_stream is not None
            and want.size > SMALL_FILE
            and not base_path.exists()
            and not await asyncio.to_thread(tmp.exists)
        ):
            # Nothing here to build on: the whole file streams over gRPC (Sync.GetStream) into its temp, hashed as
            # it is written, made durable, checked against the planned hash, then renamed (receive.py).
            header = FileHeader(rel, want.size, want.hash, want.mtime_ns, keep_version=False)
            unchanged = functools.partial(self._check_local, rel, have)  # once verified, before the rename
            try:
                await receive(self.fs.root, header, self.remote.stream(rel), self.index, unchanged, self.fs)
            except ChangedMeanwhile:
                tmp.unlink(missing_ok=True)  # the local file changed: this content now arrives as a conflict copy
                raise
            return
        if self.remote.block_level and want.blocks:
            source = tmp if tmp.exists() else (base_path if base_path.exists() else None)
            if source is not None and source != tmp:
                await asyncio.to_thread(self.fs.copy, source, tmp)
            if source is not None:
                old = (await asyncio.to_thread(hash_file, tmp)).blocks
                need = changed_blocks(old, want.blocks, want.size)
            else:
                need = list(range(len(want.blocks) // DIGEST_SIZE))
            fd = self.fs.open_write(tmp)
            try:
                for start in range(0, len(need), BATCH_BLOCKS):
                    offsets = [i * BLOCK_SIZE for i in need[start : start + BATCH_BLOCKS]]
                    blocks = await self.remote.read_ranges(rel, offsets)
                    for offset, data in zip(offsets, blocks, strict=True):
                        await asyncio.to_thread(self.fs.pwrite, fd, data, offset)
            finally:
                await asyncio.to_thread(self.fs.close, fd, want.size)
        else:
            if tmp.exists():
                resume = tmp.stat().st_size // BLOCK_SIZE * BLOCK_SIZE  # whole blocks only; the hash checks the rest
            fd = self.fs.open_write(tmp)
            try:
                async for offset, data in self.remote.stream(rel, resume):
                    await asyncio.to_thread(self.fs.pwrite, fd, data, offset)
            finally:
                await asyncio.to_thread(self.fs.close, fd, want.size)
        got = await asyncio.to_thread(hash_file, tmp)
        if got.digest != want.hash:
            tmp.unlink(missing_ok=True)
            raise SyncError(f"{rel} from {self.remote.name} did not verify (it changed meanwhile?); retrying")
        self._check_local(rel, have)
        await asyncio.to_thread(self.fs.keep_version, rel)
        st = await asyncio.to_thread(self.fs.replace, tmp, final, want.mtime_ns)
        self._cache(rel, Entry(rel, got.size, want.mtime_ns, got.digest, got.blocks), st)

    async def push(self, rel: str, have: Entry, there: Entry | None, base: str | None = None) -> Entry:
        """Make the remote ``rel`` hold the local file: changed blocks into a server-side copy, else the whole file;
        returns the entry now on both sides (with its hashes where the scan left them out)."""
        self.remote.stored(rel)  # a name the other side cannot hold fails here, before any byte travels
        tmp = temp_name(rel)
        local = self.fs.path(rel)
        if not have.hash:
            # A large new file the scan left unhashed (deferred.py): streamed and hashed as it is read, unless a
            # resume or a plain SSH server needs its hashes first, or a write could still hide in its mtime tick.
            if (
                self.remote.peer_send is None
                or racy(have, time.time_ns())
                or (self.remote.block_level and await self.remote.exists(tmp))
            ):
                have = await self._hash_now(rel, have)
            else:
                return await self._send_hashing(rel, have, keep_version=there is not None and base is None)
        if have.size <= SMALL_FILE:
            # Small files go in one write of bytes hashed here: what is sent is exactly what was verified, and
            # SSH's AEAD cipher guarantees it arrives unchanged, so no second hash on the peer is needed.
            data = await asyncio.to_thread(local.read_bytes)
            if hashlib.sha256(data).digest() != have.hash:
                raise ChangedMeanwhile(f"{rel} changed meanwhile")
            await self.remote.write_small(tmp, data)
            if there is not None and base is None:
                await self.remote.keep_version(rel)
            await self.remote.finish(tmp, rel, have.mtime_ns)
            return have
        base_rel = base or rel
        sent = False
        left = await self.remote.blocks_of(tmp) if self.remote.block_level else None
        if left is not None:
            # An interrupted push left its temp file there: send only the blocks it still lacks.
            need = changed_blocks(left, have.blocks, have.size)
            sent = await self.remote.upload_delta(local, tmp, tmp, need, have.size)
        elif self.remote.block_level and there is not None and there.blocks and have.blocks:
            need = changed_blocks(there.blocks, have.blocks, have.size)
            # Mostly new content travels faster as one stream than as block writes into a server-side copy.
            if self.remote.peer_send is None or len(need) * BLOCK_SIZE < have.size // 2:
                sent = await self.remote.upload_delta(local, base_rel, tmp, need, have.size)
        if not sent and self.remote.peer_send is not None:
            # Between NOIZYLAB nodes whole files go over the gRPC stream: the peer hashes while writing, makes the
            # temp durable and renames it only when the hash matches (measured: see docs/sync.md, Bench).
            await self.remote.send_file(local, rel, have, keep_version=there is not None and base is None)
            return have
        if not sent:
            await self.remote.upload(local, tmp)
        digest = await self.remote.hash_of(tmp)
        if digest != have.hash:
            await self.remote.remove(tmp)
            raise SyncError(f"{rel} did not verify on {self.remote.name} (it changed meanwhile?); retrying")
        if there is not None and base is None:
            await self.remote.keep_version(rel)
        await self.remote.finish(tmp, rel, have.mtime_ns)
        return have

    async def _hash_now(self, rel: str, have: Entry) -> Entry:
        """``have`` with its hashes, read now (the scan deferred them); ``ChangedMeanwhile`` if the file changed."""
        path = self.fs.path(rel)
        hashed = await asyncio.to_thread(hash_file, path)
        st = await asyncio.to_thread(os.stat, path)
        if (st.st_size, st.st_mtime_ns) != (have.size, have.mtime_ns) or hashed.size != have.size:
            raise ChangedMeanwhile(f"{rel} changed meanwhile")
        entry = Entry(rel, have.size, have.mtime_ns, hashed.digest, hashed.blocks)
        self._cache(rel, entry, st)
        return entry

    async def _send_hashing(self, rel: str, have: Entry, keep_version: bool) -> Entry:
        """Stream the file to the peer, hashing what is read; the block hashes come back from the peer, which
        computed them from the same bytes (verified by the whole-file hash) before it made the file visible."""
        path = self.fs.path(rel)
        try:
            got = await self.remote.send_file(path, rel, have, keep_version)
        except ChangedWhileSent as exc:
            raise ChangedMeanwhile(exc.message) from None
        entry = Entry(rel, have.size, have.mtime_ns, got.digest, got.blocks)
        st = await asyncio.to_thread(os.stat, path)
        if (st.st_size, st.st_mtime_ns) == (have.size, have.mtime_ns):
            self._cache(rel, entry, st)  # so the next scan need not hash it
        return entry


def _bytes(a: Action) -> int:
    if a.kind in ("pull",) and a.remote is not None:
        return a.remote.size
    if a.kind in ("push",) and a.local is not None:
        return a.local.size
    return 0
