"""A whole local file read for ``Sync.PutStream`` and hashed from the very bytes that go out.

The file is read once: a worker thread reads and hashes the next few chunks while the loop sends the previous
ones. The hash travels last (as ``SENT_HASH``) and only when the file did not change while it was read: its
stat (size, mtime, ctime, inode) before and after must match the scan's. A file that changed ends the stream
without a hash, so the peer discards what it got (nothing becomes visible) and the next pass sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.receive import CHUNK, SENT_HASH

READ_AHEAD = 4  # chunks per worker-thread hop: 8 MiB read and hashed while the previous 8 MiB travel


class Outgoing:
    """One local file as a stream of (offset, data) chunks, then (``SENT_HASH``, SHA-256 of those chunks)."""

    def __init__(self, path: Path, expected: Entry) -> None:
        self.path = path
        self.expected = expected
        self.digest = b""  # set once the whole file was read unchanged
        self.changed = False  # the file changed (or went) while it was read: the stream ended without its hash
        self.sent = 0
        self._whole = hashlib.sha256()

    async def chunks(self) -> AsyncIterator[tuple[int, bytes]]:
        try:
            f = await asyncio.to_thread(open, self.path, "rb")
        except OSError:
            self.changed = True
            return
        pending: asyncio.Future[list[bytes]] | None = None
        try:
            before = os.fstat(f.fileno())
            if (before.st_size, before.st_mtime_ns) != (self.expected.size, self.expected.mtime_ns):
                self.changed = True
                return
            pending = asyncio.ensure_future(asyncio.to_thread(self._read, f))
            offset = 0
            while batch := await pending:
                pending = asyncio.ensure_future(asyncio.to_thread(self._read, f))  # the next batch, meanwhile
                for data in batch:
                    yield offset, data
                    offset += len(data)
                    self.sent += len(data)
            after = os.fstat(f.fileno())
            if offset != self.expected.size or _stamp(after) != _stamp(before):
                self.changed = True
                return
            self.digest = self._whole.digest()
            yield SENT_HASH, self.digest
        finally:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending  # the worker thread must be done with the file before it is closed
            f.close()

    def _read(self, f: BinaryIO) -> list[bytes]:
        """Up to ``READ_AHEAD`` chunks, hashed as read; empty at the end of the file."""
        out = []
        for _ in range(READ_AHEAD):
            data = f.read(CHUNK)
            if not data:
                break
            self._whole.update(data)
            out.append(data)
        return out


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


async def file_chunks(path: Path, start: int = 0) -> AsyncIterator[tuple[int, bytes]]:
    """``path`` from ``start`` on as (offset, data) chunks, the next few read in a worker thread meanwhile; a link
    there (swapped in since the path was checked) or anything but a plain file is refused."""
    f = await asyncio.to_thread(_open_file, path)
    pending: asyncio.Future[list[bytes]] | None = None
    try:
        f.seek(start)
        pending = asyncio.ensure_future(asyncio.to_thread(read_chunks, f))
        offset = start
        while batch := await pending:
            pending = asyncio.ensure_future(asyncio.to_thread(read_chunks, f))
            for data in batch:
                yield offset, data
                offset += len(data)
    finally:
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending  # the worker thread must be done with the file before it is closed
        f.close()


def _open_file(path: Path) -> BinaryIO:
    """``path`` opened for reading, not through a link at its last step, and only when it is a plain file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a file")
    return os.fdopen(fd, "rb")


def read_chunks(f: BinaryIO, count: int = READ_AHEAD) -> list[bytes]:
    """Up to ``count`` chunks of a file opened for reading; empty at its end."""
    out = []
    for _ in range(count):
        data = f.read(CHUNK)
        if not data:
            break
        out.append(data)
    return out
