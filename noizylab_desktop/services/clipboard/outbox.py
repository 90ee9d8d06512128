"""The latest clip for each peer, pushed as soon as the peer is online: a peer that was down gets the newest
clip when it returns, never a backlog.

One task per peer: a newer clip replaces a waiting one, a failed push stays until the peer is back (the registry's
``PeerOnline`` kicks it) or is retried after ``RETRY_S`` while the peer still looks online.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb
from noizylab_desktop._proto import noizylab_clipboard_pb2_grpc as cpb_grpc
from noizylab_desktop.core.registry import PeerState, Registry

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
RETRY_S = 1.0


@dataclass(frozen=True)
class Outgoing:
    """A clip ready for the wire."""

    header: cpb.ClipHeader
    png: bytes

    async def parts(self) -> AsyncIterator[cpb.ClipPart]:
        """The header, then the image in chunks (each one yields the loop)."""
        yield cpb.ClipPart(header=self.header)
        for offset in range(0, len(self.png), CHUNK_BYTES):
            yield cpb.ClipPart(png=self.png[offset : offset + CHUNK_BYTES])

    @property
    def timeout_s(self) -> float:
        return 10.0 + 2.0 * len(self.png) / CHUNK_BYTES


class Outbox:
    """Per-peer mailboxes of size one, each drained by its own task."""

    def __init__(
        self,
        registry: Registry,
        sent: Callable[[PeerState, cpb.PushReply], None],
        refused: Callable[[PeerState, grpc.aio.AioRpcError], None],
    ) -> None:
        self._registry = registry
        self._sent = sent
        self._refused = refused
        self._pending: dict[bytes, Outgoing] = {}
        self._wake: dict[bytes, asyncio.Event] = {}
        self._tasks: dict[bytes, asyncio.Task[None]] = {}

    def pending(self, fp: bytes) -> bool:
        return fp in self._pending

    def put(self, fp: bytes, clip: Outgoing) -> None:
        """Make ``clip`` the one to send to the peer ``fp`` (dropping any older one still waiting)."""
        self._pending[fp] = clip
        self.kick(fp)

    def drop(self, fp: bytes) -> None:
        self._pending.pop(fp, None)

    def kick(self, fp: bytes) -> None:
        """Try the peer now (it came online, or a clip is new)."""
        if fp not in self._pending:
            return
        if fp not in self._tasks:
            self._wake[fp] = asyncio.Event()
            self._tasks[fp] = asyncio.create_task(self._drain(fp), name=f"clipboard-outbox-{fp.hex()[:8]}")
        self._wake[fp].set()

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    def _state(self, fp: bytes) -> PeerState | None:
        return next((s for s in self._registry.peers() if s.peer.fingerprint == fp), None)

    async def _drain(self, fp: bytes) -> None:
        wake = self._wake[fp]
        while True:
            await wake.wait()
            wake.clear()
            clip = self._pending.get(fp)
            state = self._state(fp)
            if clip is None or state is None:
                if state is None:
                    self._pending.pop(fp, None)  # unpaired meanwhile
                continue
            if not state.online:
                continue  # PeerOnline kicks us again
            try:
                reply = await cpb_grpc.ClipboardStub(self._registry.channel(state)).Push(
                    clip.parts(), timeout=clip.timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
                    if self._pending.get(fp) is clip:
                        del self._pending[fp]
                    self._refused(state, exc)
                else:
                    logger.info("clip to %s not delivered yet (%s); retrying", state.peer.name, exc.code().name)
                    asyncio.get_running_loop().call_later(RETRY_S, self.kick, fp)
                continue
            if self._pending.get(fp) is clip:
                del self._pending[fp]
            else:
                wake.set()  # a newer clip came in while this one travelled
            self._sent(state, reply)
