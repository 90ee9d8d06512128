"""One file's content to or from the other side, verified by hash before it becomes visible: block deltas with a
NOIZYLAB peer (``PeerStore``), whole files otherwise; large new files stream over a peer's own calls.

Each transfer writes a temp file (kept when it fails, so the next try resumes into it), checks the hash the plan
was made with, and renames only if the file it replaces is still as the plan saw it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import time

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, DIGEST_SIZE, changed_blocks, hash_file
from noizylab_desktop.services.sync.deferred import racy
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, temp_name
from noizylab_desktop.services.sync.planner import Action, Entry
from noizylab_desktop.services.sync.receive import FileHeader, receive
from noizylab_desktop.services.sync.remote import ChangedWhileSent, PeerStore, RemoteStore

SMALL_FILE = 1024 * 1024  # up to this size a file is pushed from memory in one write
BATCH_BLOCKS = 64  # 8 MiB in flight per file: deep enough for parallel reads, small enough for many files at once


class ChangedMeanwhile(SyncError):
    """A file changed while its action was under way; the next cycle decides again."""


class Transfers:
    """Pulls and pushes of single files for one share."""

    def __init__(self, fs: LocalFs, index: ShareIndex, remote: RemoteStore) -> None:
        self.fs = fs
        self.index = index
        self.remote = remote

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
        remote = self.remote
        tmp = self.fs.path(temp_name(rel))
        final = self.fs.path(rel)
        base_path = self.fs.path(basis) if basis else final
        fd = -1
        resume = 0
        if (
            isinstance(remote, PeerStore)
            and remote.stream_pulls
            and want.size > SMALL_FILE
            and not base_path.exists()
            and not await asyncio.to_thread(tmp.exists)
        ):
            # Nothing here to build on: the whole file streams over gRPC (Sync.GetStream) into its temp, hashed as
            # it is written, made durable, checked against the planned hash, then renamed (receive.py).
            header = FileHeader(rel, want.size, want.hash, want.mtime_ns, keep_version=False)
            unchanged = functools.partial(self._check_local, rel, have)  # once verified, before the rename
            try:
                await receive(self.fs.root, header, remote.stream(rel), self.index, unchanged, self.fs)
            except ChangedMeanwhile:
                tmp.unlink(missing_ok=True)  # the local file changed: this content now arrives as a conflict copy
                raise
            return
        if isinstance(remote, PeerStore) and want.blocks:
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
                    blocks = await remote.read_ranges(rel, offsets)
                    for offset, data in zip(offsets, blocks, strict=True):
                        await asyncio.to_thread(self.fs.pwrite, fd, data, offset)
            finally:
                await asyncio.to_thread(self.fs.close, fd, want.size)
        else:
            if tmp.exists():
                resume = tmp.stat().st_size // BLOCK_SIZE * BLOCK_SIZE  # whole blocks only; the hash checks the rest
            fd = self.fs.open_write(tmp)
            try:
                async for offset, data in remote.stream(rel, resume):
                    await asyncio.to_thread(self.fs.pwrite, fd, data, offset)
            finally:
                await asyncio.to_thread(self.fs.close, fd, want.size)
        got = await asyncio.to_thread(hash_file, tmp)
        if got.digest != want.hash:
            tmp.unlink(missing_ok=True)
            raise SyncError(f"{rel} from {remote.name} did not verify (it changed meanwhile?); retrying")
        self._check_local(rel, have)
        st = await asyncio.to_thread(self.fs.replace, tmp, final, want.mtime_ns, rel)
        self._cache(rel, Entry(rel, got.size, want.mtime_ns, got.digest, got.blocks), st)

    async def push(self, rel: str, have: Entry, there: Entry | None, base: str | None = None) -> Entry:
        """Make the remote ``rel`` hold the local file: changed blocks into a server-side copy, else the whole file;
        returns the entry now on both sides (with its hashes where the scan left them out)."""
        remote = self.remote
        remote.stored(rel)  # a name the other side cannot hold fails here, before any byte travels
        tmp = temp_name(rel)
        local = self.fs.path(rel)
        keep = there is not None and base is None  # the file there is replaced: keep it as a version first
        if not have.hash:
            # A large new file the scan left unhashed (deferred.py): streamed and hashed as it is read, unless a
            # resume or a plain SSH server needs its hashes first, or a write could still hide in its mtime tick.
            if not isinstance(remote, PeerStore) or racy(have, time.time_ns()) or await remote.exists(tmp):
                have = await self._hash_now(rel, have)
            else:
                return await self._send_hashing(remote, rel, have, keep_version=keep)
        if have.size <= SMALL_FILE:
            # Small files go in one write of bytes hashed here: what is sent is exactly what was verified, and
            # SSH's AEAD cipher guarantees it arrives unchanged, so no second hash on the peer is needed.
            data = await asyncio.to_thread(local.read_bytes)
            if hashlib.sha256(data).digest() != have.hash:
                raise ChangedMeanwhile(f"{rel} changed meanwhile")
            await remote.write_small(tmp, data)
            if keep:
                await remote.keep_version(rel)
            await remote.finish(tmp, rel, have.mtime_ns)
            return have
        sent = False
        if isinstance(remote, PeerStore):
            left = await remote.blocks_of(tmp)
            if left is not None:
                # An interrupted push left its temp file there: send only the blocks it still lacks.
                need = changed_blocks(left, have.blocks, have.size)
                sent = await remote.upload_delta(local, tmp, tmp, need, have.size)
            elif there is not None and there.blocks and have.blocks:
                need = changed_blocks(there.blocks, have.blocks, have.size)
                # Mostly new content travels faster as one stream than as block writes into a server-side copy.
                if len(need) * BLOCK_SIZE < have.size // 2:
                    sent = await remote.upload_delta(local, base or rel, tmp, need, have.size)
            if not sent:
                # Between NOIZYLAB nodes whole files go over the gRPC stream: the peer hashes while writing, makes
                # the temp durable and renames it only when the hash matches (measured: see docs/sync.md, Bench).
                await remote.send_file(local, rel, have, keep_version=keep)
                return have
        if not sent:
            await remote.upload(local, tmp)
        digest = await remote.hash_of(tmp)
        if digest != have.hash:
            await remote.remove(tmp)
            raise SyncError(f"{rel} did not verify on {remote.name} (it changed meanwhile?); retrying")
        if keep:
            await remote.keep_version(rel)
        await remote.finish(tmp, rel, have.mtime_ns)
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

    async def _send_hashing(self, peer: PeerStore, rel: str, have: Entry, keep_version: bool) -> Entry:
        """Stream the file to the peer, hashing what is read; the block hashes come back from the peer, which
        computed them from the same bytes (verified by the whole-file hash) before it made the file visible."""
        path = self.fs.path(rel)
        try:
            got = await peer.send_file(path, rel, have, keep_version)
        except ChangedWhileSent as exc:
            raise ChangedMeanwhile(exc.message) from None
        entry = Entry(rel, have.size, have.mtime_ns, got.digest, got.blocks)
        st = await asyncio.to_thread(os.stat, path)
        if (st.st_size, st.st_mtime_ns) == (have.size, have.mtime_ns):
            self._cache(rel, entry, st)  # so the next scan need not hash it
        return entry


def action_bytes(a: Action) -> int:
    """The bytes an action moves: a pull's or a push's file size, else nothing."""
    if a.kind in ("pull",) and a.remote is not None:
        return a.remote.size
    if a.kind in ("push",) and a.local is not None:
        return a.local.size
    return 0
