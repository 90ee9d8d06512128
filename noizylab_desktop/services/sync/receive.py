"""A whole file arriving from a NOIZYLAB peer as a stream of large chunks (``Sync.PutStream``), off SFTP.

The chunks land in the file's stable temp name (so an interrupted stream leaves a temp that the next push resumes
into, block by block), are hashed as they arrive (whole file and 128 KiB blocks, so no second read), made durable
with one ``fdatasync`` and checked against the sender's hash before the old file goes to versions and the temp is
renamed over it. A chunk that does not match leaves nothing visible.

A header without a hash means the sender hashes while it reads (``sending.py``): its hash then comes last, as the
item ``(SENT_HASH, digest)``, and a stream that ends without it (the file changed while it was sent) leaves nothing
visible either.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync import fileio
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, Hashed, hash_file
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, temp_name
from noizylab_desktop.services.sync.names import check_rel, resolve_inside
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.space import check_free
from noizylab_desktop.services.sync.writeback import Writeback

CHUNK = 2 * 1024 * 1024  # per message: 16 blocks, well under gRPC's 4 MiB cap
SENT_HASH = -1  # the offset of the stream's last item when the header had no hash: that item's data is the hash


@dataclass(frozen=True)
class FileHeader:
    """What the sender promises: the file's path in the share, size, SHA-256 (empty: sent last), mtime, and whether
    to keep the old file."""

    path: str
    size: int
    digest: bytes
    mtime_ns: int
    keep_version: bool


class Incoming:
    """One file being received into its temp name; blocking methods, run them in a worker thread."""

    def __init__(self, root: Path, header: FileHeader, fs: LocalFs | None = None) -> None:
        rel = check_rel(header.path)
        head = rel.rpartition("/")[0]
        folder = resolve_inside(root, head) if head else root
        folder.mkdir(parents=True, exist_ok=True)
        if head:
            resolve_inside(root, head)  # again, now that it exists: no link out of the share
        self.fs = fs or LocalFs(root)
        self.header = header
        self.rel = rel
        self.final = self.fs.path(rel)
        if self.final.is_symlink():
            raise SyncError(f"{rel} is a link: links are not replaced")
        check_free(folder, header.size, rel)  # before the temp exists: a size that cannot fit is refused at once
        self.tmp = self.fs.path(temp_name(rel))
        self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | fileio.BINARY, 0o644)
        self._whole = hashlib.sha256()
        self._blocks = bytearray()
        self._hashed = 0  # bytes hashed so far, in order; a chunk out of order means hashing the temp at the end
        self._end = 0  # bytes that arrived, from 0 on without a gap: the temp never holds more than arrived
        self._in_order = True
        self._writeback = Writeback(self._fd)
        self._direct = self.fs.direct(self.tmp, CHUNK)
        self._lock = threading.Lock()  # a cancelled call may abort while a worker thread still writes

    def write(self, offset: int, data: bytes) -> None:
        if offset + len(data) > self.header.size:
            raise SyncError(f"{self.rel}: a chunk runs past the announced size")
        if offset > self._end:
            # A gap would make a sparse temp as big as announced out of a few bytes, and hashing it read them all.
            raise SyncError(f"{self.rel}: a chunk at {offset} skips bytes that never arrived (after {self._end})")
        with self._lock:
            if self._fd < 0:
                raise SyncError(f"{self.rel}: the transfer was stopped")
            if self._direct is None or not self._direct.write(data, offset, self.header.size):
                self.fs.pwrite(self._fd, data, offset)
                # Flush as we go: the disk writes while the network delivers, and the last fdatasync stays short.
                self._writeback.wrote(offset, len(data))
            self._end = max(self._end, offset + len(data))

    def hash(self, offset: int, data: bytes) -> None:
        """Hash a chunk as it arrives (in its own thread, beside ``write``: hashlib and pwrite both free the GIL)."""
        whole_blocks = len(data) % BLOCK_SIZE == 0 or offset + len(data) == self.header.size
        if self._in_order and offset == self._hashed and whole_blocks:
            self._whole.update(data)
            view = memoryview(data)
            for i in range(0, len(data), BLOCK_SIZE):
                self._blocks += hashlib.sha256(view[i : i + BLOCK_SIZE]).digest()
            self._hashed += len(data)
        else:
            self._in_order = False

    def finish(
        self, index: ShareIndex | None = None, sent_hash: bytes = b"", check: Callable[[], None] | None = None
    ) -> Hashed:
        """Durable, verified, then visible; raises (leaving nothing visible) when the content does not match, or
        when ``check`` (run once verified, before the old file goes) raises."""
        expected = self.header.digest or sent_hash
        if not expected:
            self.abort()  # the temp file stays: a resume sends only the blocks it lacks
            raise SyncError(f"{self.rel} changed while it was sent; retrying")
        if self._end != self.header.size:
            self.abort()  # the temp holds what arrived, no more: a resume builds on it
            raise SyncError(
                f"{self.rel}: the stream ended after {self._end} of the {self.header.size} bytes announced; retrying"
            )
        with self._lock:
            fd, self._fd = self._fd, -1
            if self._direct is not None:
                self._direct.close()
        try:
            os.ftruncate(fd, self.header.size)  # also drops the padding of a last chunk written direct
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if self._in_order and self._hashed == self.header.size:
            got = Hashed(self._hashed, self._whole.digest(), bytes(self._blocks))
        else:
            got = hash_file(self.tmp)
        if got.digest != expected:
            self.tmp.unlink(missing_ok=True)
            raise SyncError(f"{self.rel} did not verify on arrival (changed while sent?); retrying")
        if check is not None:
            check()
        keep = self.rel if self.header.keep_version else None
        st = self.fs.replace(self.tmp, self.final, self.header.mtime_ns, keep)
        if index is not None:
            index.put_local([Cached(Entry(self.rel, got.size, st.st_mtime_ns, got.digest, got.blocks), st.st_ino)])
        return got

    def abort(self) -> None:
        """Stop early; the temp file stays so the next push resumes into it."""
        with self._lock:
            if self._direct is not None:
                self._direct.close()
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                try:
                    if self._direct is not None and self._direct.padded:
                        os.ftruncate(fd, self._end)  # the temp holds what arrived, not the padding
                finally:
                    os.close(fd)


async def receive(
    root: Path,
    header: FileHeader,
    chunks: AsyncIterator[tuple[int, bytes]],
    index: ShareIndex | None = None,
    check: Callable[[], None] | None = None,
    fs: LocalFs | None = None,
) -> Hashed:
    """Receive ``chunks`` (offset, data) into ``root`` as ``header`` describes; the file's hashes once visible.
    With ``index`` (this side's scan cache) the file is recorded there, so its next scan need not hash it;
    ``check`` runs once the content is verified, before it replaces anything (a pull: the local file unchanged).
    ``fs`` writes the bytes (a pull: the engine's own, so its faults reach these writes too)."""
    incoming = await asyncio.to_thread(Incoming, root, header, fs)
    # Receiving (the loop), writing and hashing (two worker threads) overlap: a few chunks wait in between.
    queues: list[asyncio.Queue[tuple[int, bytes] | None]] = [asyncio.Queue(maxsize=4), asyncio.Queue(maxsize=4)]

    async def consume(queue: asyncio.Queue[tuple[int, bytes] | None], work: Callable[[int, bytes], None]) -> None:
        while (item := await queue.get()) is not None:
            await asyncio.to_thread(work, *item)

    tasks = [
        asyncio.create_task(consume(queues[0], incoming.write)),
        asyncio.create_task(consume(queues[1], incoming.hash)),
    ]
    failed = asyncio.gather(*tasks)  # done early only when one of them failed
    sent_hash = b""
    try:
        try:
            async for item in chunks:
                if failed.done():
                    break  # a worker failed: its error is raised below
                if item[0] == SENT_HASH:
                    sent_hash = item[1]
                    break
                for queue in queues:
                    await _put(queue, item, failed)
        finally:
            # What arrived is written even when the stream broke, so the next push resumes after it.
            for queue in queues:
                if not failed.done():
                    await _put(queue, None, failed)
            await failed
        return await asyncio.to_thread(incoming.finish, index, sent_hash, check)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failed.done() and not failed.cancelled():
            # Seen here: a call cancelled mid-stream (the edge ending a bad one) left the workers' cancel in it,
            # which asyncio logged as "exception was never retrieved" with a traceback.
            failed.exception()
        incoming.abort()


async def _put(
    queue: asyncio.Queue[tuple[int, bytes] | None], item: tuple[int, bytes] | None, failed: asyncio.Future[list[None]]
) -> None:
    """Queue ``item`` unless the workers end first (then their error surfaces when awaited)."""
    put: asyncio.Future[object] = asyncio.ensure_future(queue.put(item))
    await asyncio.wait([put, cast("asyncio.Future[object]", failed)], return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
