"""The calls a NOIZYLAB peer answers for one share (``PeerCalls``), and their client over the nodes' gRPC channel
(``GrpcPeer``: ``Sync.Index``, ``Hash``, ``PutFiles``, ``PutStream``, ``GetFiles``, ``GetStream`` and ``Watch``).
Paths here are as the peer stores them; ``PeerRemote`` translates."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.index import one
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.receive import SENT_HASH, FileHeader
from noizylab_desktop.services.sync.remote.store import SmallFiles


class PeerCalls(Protocol):
    """What a peer serves of one share besides its SFTP; each failure is a ``SyncError``."""

    def index(self) -> AsyncIterator[list[Entry]]:
        """Every file of the share with its block hashes, in batches."""

    async def hash(self, path: str) -> tuple[bytes, bytes]:
        """A file's SHA-256 and block hashes, read now."""

    async def put(self, files: SmallFiles) -> dict[str, str]:
        """Small files written, each checked by hash; returns path → why it failed."""

    async def send(self, header: FileHeader, chunks: AsyncIterator[tuple[int, bytes]]) -> tuple[bytes, bytes]:
        """A whole file streamed in; returns its SHA-256 and block hashes as the peer received them."""

    def get(self, paths: list[str]) -> AsyncIterator[tuple[SmallFiles, dict[str, str]]]:
        """Small files read there, in groups, with path → why not for those it could not read."""

    def stream(self, path: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
        """A whole file from ``offset`` on, streamed out."""


class GrpcPeer:
    """``PeerCalls`` over the nodes' mTLS gRPC channel; ``stub`` gives the peer's current channel for each call."""

    def __init__(
        self,
        stub: Callable[[], spb_grpc.SyncStub],
        share_id: str,
        failed: Callable[[grpc.aio.AioRpcError], SyncError],
    ) -> None:
        self._stub = stub
        self.share_id = share_id
        self._failed = failed  # a gRPC failure as one line

    async def index(self) -> AsyncIterator[list[Entry]]:
        """Every file of the share with its block hashes, in batches (``Sync.Index``)."""
        try:
            async for batch in self._stub().Index(spb.ShareRef(share_id=self.share_id), timeout=600):
                yield [Entry(e.path, e.size, e.mtime_ns, (h := e.hash), one(h, e.blocks)) for e in batch.entries]
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from exc

    async def hash(self, path: str) -> tuple[bytes, bytes]:
        """A file's SHA-256 and block hashes, read now (``Sync.Hash``)."""
        try:
            reply = await self._stub().Hash(spb.HashRequest(share_id=self.share_id, path=path), timeout=600)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from exc
        return bytes(reply.hash), bytes(reply.blocks)

    async def put(self, files: SmallFiles) -> dict[str, str]:
        """Small files written in one call (``Sync.PutFiles``)."""
        request = spb.PutRequest(
            share_id=self.share_id,
            files=[spb.SmallFile(path=p, data=d, hash=h, mtime_ns=m) for p, d, h, m in files],
        )
        try:
            reply = await self._stub().PutFiles(request, timeout=120)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from exc
        return dict(reply.failed)

    async def send(self, header: FileHeader, chunks: AsyncIterator[tuple[int, bytes]]) -> tuple[bytes, bytes]:
        """A whole file streamed in (``Sync.PutStream``): the header, the chunks, and the hash last where the
        header had none."""

        async def messages() -> AsyncIterator[spb.FileChunk]:
            yield spb.FileChunk(
                share_id=self.share_id,
                path=header.path,
                size=header.size,
                hash=header.digest,
                mtime_ns=header.mtime_ns,
                keep_version=header.keep_version,
            )
            async for offset, data in chunks:
                yield spb.FileChunk(hash=data) if offset == SENT_HASH else spb.FileChunk(offset=offset, data=data)

        try:
            reply = await self._stub().PutStream(messages(), timeout=3600)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from exc
        return bytes(reply.hash), bytes(reply.blocks)

    async def get(self, paths: list[str]) -> AsyncIterator[tuple[SmallFiles, dict[str, str]]]:
        """Small files read there, in groups as they arrive (``Sync.GetFiles``)."""
        try:
            async for reply in self._stub().GetFiles(spb.GetRequest(share_id=self.share_id, paths=paths), timeout=600):
                yield [(f.path, f.data, f.hash, f.mtime_ns) for f in reply.files], dict(reply.failed)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from exc

    async def stream(self, path: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
        """A whole file from ``offset`` on (``Sync.GetStream``)."""
        request = spb.GetStreamRequest(share_id=self.share_id, path=path, offset=offset)
        try:
            async for chunk in self._stub().GetStream(request, timeout=3600):
                yield chunk.offset, chunk.data
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from exc

    async def notices(self) -> AsyncIterator[object]:
        """The peer's change notices for the share (``Sync.Watch``), the first as soon as the watch is live."""
        async for notice in self._stub().Watch(spb.ShareRef(share_id=self.share_id)):
            yield notice
