"""A paired NOIZYLAB node as a share's other side: its embedded SFTP server for block deltas (reads at offsets;
writes into a server-side copy made with the ``copy-data`` extension), and its own calls (``calls.py``) for the
listing with block hashes, hashes of pushed temp files, batches of small files and whole files streamed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import Hashed
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.receive import FileHeader
from noizylab_desktop.services.sync.remote.calls import PeerCalls
from noizylab_desktop.services.sync.remote.connection import Target
from noizylab_desktop.services.sync.remote.sftp_files import SftpFiles
from noizylab_desktop.services.sync.remote.store import STREAM_CHUNK, ChangedWhileSent, SmallFiles
from noizylab_desktop.services.sync.sending import Outgoing, read_chunks


class PeerRemote(SftpFiles):
    """A ``PeerStore``: one share on a paired node, over its SFTP and its ``calls``.

    ``batch_puts`` and ``stream_pulls`` are on between nodes; turned off, that work goes over SFTP instead (the
    tests do so to reach the SFTP paths with a peer)."""

    def __init__(
        self,
        target: Target,
        client_key: bytes,
        index: ShareIndex,
        calls: PeerCalls,
        *,
        batch_puts: bool = True,
        stream_pulls: bool = True,
    ) -> None:
        super().__init__(target, client_key, index)
        self.calls = calls
        self.batch_puts = batch_puts
        self.stream_pulls = stream_pulls

    @property
    def block_level(self) -> bool:
        """True: the peer's listing carries block hashes, so only changed blocks travel."""
        return True

    async def listing(self) -> dict[str, Entry]:
        """Every file on the peer with its hashes, from its index."""
        self._spelled.clear()
        found: dict[str, Entry] = {}
        async for batch in self.calls.index():
            for e in batch:
                rel = self.wire(e.path)
                found[rel] = e if rel == e.path else dataclasses.replace(e, path=rel)
        return found

    async def hash_of(self, rel: str) -> bytes:
        """The whole-file hash of a remote file, read there now."""
        return (await self.calls.hash(self.stored(rel)))[0]

    async def blocks_of(self, rel: str) -> bytes | None:
        """Block hashes of a remote file (a temp file left by an interrupted push), or None where it is absent."""
        if not await self.exists(rel):
            return None
        return (await self.calls.hash(self.stored(rel)))[1]

    async def stream(self, rel: str, start: int = 0, chunk: int = STREAM_CHUNK) -> AsyncIterator[tuple[int, bytes]]:
        """The remote file from ``start`` on: over the peer's stream, or over SFTP where ``stream_pulls`` is off."""
        if not self.stream_pulls:
            async for item in super().stream(rel, start, chunk):
                yield item
            return
        async for offset, data in self.calls.stream(self.stored(rel), start):
            self.bytes_received += len(data)
            yield offset, data

    async def put_files(self, files: SmallFiles) -> dict[str, str]:
        """Many small files in one call (the peer checks each hash, then renames into place)."""
        failed: dict[str, str] = {}
        wire: dict[str, str] = {}
        sending: SmallFiles = []
        for path, data, digest, mtime_ns in files:
            try:
                wire[self.stored(path)] = path
            except SyncError as exc:  # a name the other side cannot hold: that file fails, the rest go
                failed[path] = exc.message
                continue
            sending.append((self.stored(path), data, digest, mtime_ns))
        if sending:
            for stored, why in (await self.calls.put(sending)).items():
                failed[wire.get(stored, stored)] = why
        self.bytes_sent += sum(len(f[1]) for f in sending)
        return failed

    async def get_files(self, rels: list[str]) -> AsyncIterator[tuple[SmallFiles, dict[str, str]]]:
        """Many small files in one call, in groups as they arrive, with those the peer could not read."""
        wire = {self.stored(rel): rel for rel in rels}  # the peer's names (encoded for its OS) → ours
        async for files, failed in self.calls.get(list(wire)):
            self.bytes_received += sum(len(f[1]) for f in files)
            yield (
                [(wire.get(p, p), data, digest, mtime) for p, data, digest, mtime in files],
                {wire.get(p, p): why for p, why in failed.items()},
            )

    async def send_file(self, local: Path, rel: str, have: Entry, keep_version: bool) -> Hashed:
        """The whole local file over the peer's stream; the peer verifies and renames it. Without a hash in
        ``have`` the file is hashed as it is read (``sending.py``); ``ChangedWhileSent`` when it changed."""
        header = FileHeader(self.stored(rel), have.size, have.hash, have.mtime_ns, keep_version)
        if not have.hash:
            out = Outgoing(local, have)
            try:
                digest, blocks = await self.calls.send(header, out.chunks())
            except SyncError:
                if out.changed:
                    raise ChangedWhileSent(f"{rel} changed while it was sent") from None
                raise
            finally:
                self.bytes_sent += out.sent
            if digest != out.digest:
                raise SyncError(f"{rel} did not verify on {self.name}; retrying")
            return Hashed(have.size, digest, blocks)

        async def chunks() -> AsyncIterator[tuple[int, bytes]]:
            with open(local, "rb") as f:
                offset = 0
                # Several chunks per worker-thread hop: fewer hops, and reading stays ahead of the network.
                while batch := await asyncio.to_thread(read_chunks, f, 4):
                    for data in batch:
                        yield offset, data
                        offset += len(data)
                        self.bytes_sent += len(data)

        digest, blocks = await self.calls.send(header, chunks())
        return Hashed(have.size, digest, blocks)
