"""Resuming a whole-file push to a plain SSH server (a NAS with OpenSSH) from the temp file an interrupted push left.

The temp file's content so far is checked before it is trusted: ``head -c N | sha256sum`` on the server against
the same prefix here, N being its last full 128 KiB block. A server without command execution, or a temp file
holding other content, means starting again; the whole file's hash is checked after the push either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
from pathlib import Path

import asyncssh

from noizylab_desktop.services.sync import fileio
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE

CHUNK = 16 * 1024 * 1024  # per write call; asyncssh splits it into parallel requests within the server's limits
PARALLEL_REQUESTS = 128


async def resume_point(sftp: asyncssh.SFTPClient, conn: asyncssh.SSHClientConnection, path: str, local: Path) -> int:
    """Where a push of ``local`` into the remote ``path`` can go on (0: from the start)."""
    try:
        there = int((await sftp.stat(path)).size or 0)
    except asyncssh.SFTPNoSuchFile:
        return 0
    start = min(there, local.stat().st_size) // BLOCK_SIZE * BLOCK_SIZE
    if start == 0:
        return 0
    try:
        result = await conn.run(f"head -c {start} -- {shlex.quote(path)} | sha256sum", check=False, timeout=300)
    except (TimeoutError, asyncssh.Error, OSError):
        return 0  # no command execution on this server
    there_hash = str(result.stdout or "").split(" ", 1)[0]
    return start if there_hash == await asyncio.to_thread(_prefix_hash, local, start) else 0


async def put_from(sftp: asyncssh.SFTPClient, path: str, local: Path, start: int) -> int:
    """Write ``local`` from ``start`` on into the remote ``path`` and cut it to size; returns the bytes sent."""
    sent = 0
    async with sftp.open(path, "r+b", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
        fd = os.open(local, os.O_RDONLY | fileio.BINARY)
        try:
            offset = start
            while data := await asyncio.to_thread(fileio.pread, fd, CHUNK, offset):
                await f.write(data, offset)
                sent += len(data)
                offset += len(data)
        finally:
            os.close(fd)
        await f.truncate(offset)
    return sent


def _prefix_hash(path: Path, size: int) -> str:
    """SHA-256 (hex) of the first ``size`` bytes of a local file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left and (chunk := f.read(min(left, 4 * 1024 * 1024))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()
