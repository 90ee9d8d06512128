"""The file operations both kinds of remote do over SFTP: reads (whole, or blocks at offsets), writes (whole, small,
or changed blocks into a server-side ``copy-data`` copy), the verified temp file's rename into place, versions,
renames and removes."""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import asyncssh

from noizylab_desktop.services.sync import fileio
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE
from noizylab_desktop.services.sync.conflicts import version_name
from noizylab_desktop.services.sync.remote.connection import PARALLEL_REQUESTS, SftpConnection
from noizylab_desktop.services.sync.remote.store import STREAM_CHUNK


class SftpFiles(SftpConnection):
    """File operations on the other side over one SFTP connection."""

    async def stream(self, rel: str, start: int = 0, chunk: int = STREAM_CHUNK) -> AsyncIterator[tuple[int, bytes]]:
        """The remote file from ``start`` on, in large chunks (asyncssh splits each into parallel reads)."""
        sftp = await self.sftp()
        async with sftp.open(self.abs(rel), "rb", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
            offset = start
            while data := cast(bytes, await f.read(chunk, offset)):
                self.bytes_received += len(data)
                yield offset, data
                offset += len(data)

    async def read_ranges(self, rel: str, offsets: list[int], size: int = BLOCK_SIZE) -> list[bytes]:
        """Blocks of a remote file, read in parallel."""
        sftp = await self.sftp()
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)
        async with sftp.open(self.abs(rel), "rb") as f:

            async def one(offset: int) -> bytes:
                async with gate:
                    return cast(bytes, await f.read(size, offset))

            blocks = await asyncio.gather(*(one(o) for o in offsets))
        self.bytes_received += sum(len(b) for b in blocks)
        return blocks

    async def upload(self, local: Path, rel: str) -> None:
        """``local`` into the remote file ``rel`` (a temp name), whole."""
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(rel))
        size = local.stat().st_size
        await sftp.put(local, self.abs(rel), block_size=-1, max_requests=PARALLEL_REQUESTS)
        self.bytes_sent += size

    async def write_small(self, rel: str, data: bytes) -> None:
        """``data`` into the remote file ``rel`` (a temp name) in one open, write, close."""
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(rel))
        async with sftp.open(self.abs(rel), "wb", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
            await f.write(data)
        self.bytes_sent += len(data)

    async def upload_delta(self, local: Path, base_rel: str, rel: str, blocks: list[int], size: int) -> bool:
        """``rel`` = server-side copy of ``base_rel`` (or ``rel`` itself, resuming) + the given blocks of ``local``."""
        sftp = await self.sftp()
        if base_rel != rel:
            try:
                await sftp.remote_copy(self.abs(base_rel), self.abs(rel))
            except (asyncssh.SFTPOpUnsupported, asyncssh.SFTPNoSuchFile):
                return False
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)
        fd = os.open(local, os.O_RDONLY | fileio.BINARY)
        try:
            async with sftp.open(self.abs(rel), "r+b") as f:

                async def one(i: int) -> None:
                    async with gate:
                        data = fileio.pread(fd, BLOCK_SIZE, i * BLOCK_SIZE)
                        await f.write(data, i * BLOCK_SIZE)
                        self.bytes_sent += len(data)

                await asyncio.gather(*(one(i) for i in blocks))
                await f.truncate(size)
        finally:
            os.close(fd)
        return True

    async def finish(self, tmp_rel: str, rel: str, mtime_ns: int) -> None:
        """Set the mtime of a verified temp file and rename it over ``rel`` atomically."""
        sftp = await self.sftp()
        seconds = mtime_ns / 1e9
        ns = mtime_ns % 1_000_000_000
        attrs = asyncssh.SFTPAttrs(atime=int(seconds), atime_ns=ns, mtime=int(seconds), mtime_ns=ns)
        await sftp.setstat(self.abs(tmp_rel), attrs)
        await sftp.posix_rename(self.abs(tmp_rel), self.abs(rel))

    async def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, making ``dst``'s folder where needed."""
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(dst))
        await sftp.posix_rename(self.abs(src), self.abs(dst))

    async def keep_version(self, rel: str) -> None:
        """Keep the current ``rel`` in the versions folder (a hard link, else a server-side copy) before it goes."""
        sftp = await self.sftp()
        now = time.time()
        for n in range(1, 1000):
            kept = version_name(rel, now, n)
            if await sftp.exists(self.abs(kept)):
                continue
            await self.makedirs(posixpath.dirname(kept))
            try:
                await sftp.link(self.abs(rel), self.abs(kept))
            except asyncssh.SFTPNoSuchFile:
                return
            except asyncssh.SFTPError:
                await sftp.remote_copy(self.abs(rel), self.abs(kept))
            return

    async def remove(self, rel: str) -> None:
        """Remove ``rel``; one already gone is no error."""
        sftp = await self.sftp()
        try:
            await sftp.remove(self.abs(rel))
        except asyncssh.SFTPNoSuchFile:
            pass

    async def makedirs(self, rel_dir: str) -> None:
        """Make a folder and its parents there."""
        if not rel_dir or rel_dir in self._made_dirs:
            return
        sftp = await self.sftp()
        await sftp.makedirs(self.abs(rel_dir), exist_ok=True)
        self._made_dirs.add(rel_dir)  # remembered for this connection: one round trip per folder, not per file

    async def exists(self, rel: str) -> bool:
        """Whether ``rel`` is a regular file there."""
        sftp = await self.sftp()
        try:
            return stat.S_ISREG((await sftp.stat(self.abs(rel))).permissions or 0)
        except asyncssh.SFTPNoSuchFile:
            return False
