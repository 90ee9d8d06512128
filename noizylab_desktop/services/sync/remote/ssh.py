"""A plain SSH server (OpenSSH, a NAS) as a share's other side: whole files travel, the listing is an SFTP walk
whose changed files are hashed with ``sha256sum`` over SSH (else by reading them), and an interrupted push resumes
from its temp file once that prefix checks out by hash (``ssh_resume.py``)."""

from __future__ import annotations

import hashlib
import logging
import posixpath
import shlex
from pathlib import Path
from typing import cast

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.ignore import Ignore
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.remote.connection import PARALLEL_REQUESTS
from noizylab_desktop.services.sync.remote.sftp_files import SftpFiles
from noizylab_desktop.services.sync.ssh_resume import put_from, resume_point

logger = logging.getLogger(__name__)

HASH_BATCH = 200  # files per ``sha256sum`` command


class SshRemote(SftpFiles):
    """A share's folder on any SFTP server; its files' hashes are cached in the share's index by size and mtime."""

    @property
    def block_level(self) -> bool:
        """False: listings carry whole-file hashes only, so whole files travel."""
        return False

    async def listing(self) -> dict[str, Entry]:
        """Every file there with its hash: an SFTP walk, hashing only files whose size or mtime changed."""
        self._spelled.clear()
        sftp = await self.sftp()
        cache = self._index.remote_cache()
        stats: dict[str, tuple[int, int]] = {}
        ignore_lines: list[str] = []
        try:
            async with sftp.open(self.abs(".nzignore"), "rb") as f:
                ignore_lines = cast(bytes, await f.read()).decode("utf-8", "replace").splitlines()
        except (asyncssh.SFTPError, OSError):
            pass
        ignore = Ignore(ignore_lines)

        async def walk(rel_dir: str) -> None:
            folder = posixpath.join(self.target.root, rel_dir) if rel_dir else self.target.root
            async for item in sftp.scandir(folder):
                name = str(item.filename)
                if name in (".", ".."):
                    continue
                stored = f"{rel_dir}/{name}" if rel_dir else name
                rel = self.wire(stored)
                kind = item.attrs.type
                if kind == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    if not ignore.ignored(rel, is_dir=True):
                        await walk(stored)
                elif kind == asyncssh.FILEXFER_TYPE_REGULAR and not ignore.ignored(rel):
                    mtime_ns = (
                        int(item.attrs.mtime or 0) * 1_000_000_000 + int(item.attrs.mtime_ns or 0) % 1_000_000_000
                    )
                    stats[rel] = (int(item.attrs.size or 0), mtime_ns)

        try:
            await walk("")
        except asyncssh.SFTPNoSuchFile as exc:
            raise SyncError(
                f"the folder {self.target.root} on {self.name} is gone: create it or remove the share"
            ) from exc
        stale = [
            p
            for p, (size, mtime) in stats.items()
            if p not in cache or (cache[p].size, cache[p].mtime_ns) != (size, mtime)
        ]
        hashes = await self._remote_hashes(stale)
        fresh = [Entry(p, stats[p][0], stats[p][1], hashes[p]) for p in stale if p in hashes]
        self._index.put_remote(fresh, [p for p in cache if p not in stats])
        result = {p: cache[p] for p in stats if p in cache and p not in hashes}
        result.update({e.path: e for e in fresh})
        return result

    async def hash_of(self, rel: str) -> bytes:
        """The whole-file hash of a remote file (a pushed temp file, before it is made visible)."""
        return (await self._remote_hashes([rel]))[rel]

    async def _remote_hashes(self, rels: list[str]) -> dict[str, bytes]:
        """SHA-256 of remote files: ``sha256sum`` over SSH in batches, else by reading them."""
        found: dict[str, bytes] = {}
        if not rels:
            return found
        assert self._conn is not None
        for i in range(0, len(rels), HASH_BATCH):
            batch = rels[i : i + HASH_BATCH]
            cmd = "sha256sum -b -- " + " ".join(shlex.quote(self.abs(r)) for r in batch)
            try:
                result = await self._conn.run(cmd, check=False, timeout=300)
            except (TimeoutError, asyncssh.Error, OSError):
                result = None
            lines = str(result.stdout or "").splitlines() if result is not None else []
            for rel, line in zip(batch, lines, strict=False):
                digest = line.split(" ", 1)[0]
                if len(digest) == 64 and line.endswith(self.abs(rel)):
                    found[rel] = bytes.fromhex(digest)
        for rel in rels:
            if rel not in found:
                try:
                    found[rel] = await self._read_hash(self.abs(rel))
                except (asyncssh.SFTPError, OSError):
                    continue  # vanished or unreadable: the next scan sees it
        return found

    async def _read_hash(self, path: str) -> bytes:
        sftp = await self.sftp()
        h = hashlib.sha256()
        async with sftp.open(path, "rb", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
            while chunk := cast(bytes, await f.read(4 * 1024 * 1024)):
                h.update(chunk)
                self.bytes_received += len(chunk)
        return h.digest()

    async def upload(self, local: Path, rel: str) -> None:
        """``local`` into the remote file ``rel`` (a temp name), whole; a temp file left there by an interrupted
        push is resumed from its last full block once that prefix checks out by hash."""
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(rel))
        assert self._conn is not None
        start = await resume_point(sftp, self._conn, self.abs(rel), local)
        if start:
            size = local.stat().st_size
            logger.info("resuming the push of %s to %s at %d of %d bytes", rel, self.name, start, size)
            self.bytes_sent += await put_from(sftp, self.abs(rel), local, start)
            return
        await super().upload(local, rel)
