"""The viewer's side of a session: start it, receive frames, send input and feedback, estimate the clock offset.

The offset is NTP's: each feedback message carries the viewer's send time, the host echoes it with its receive and
send times, and ``offset = ((t2 - t1) + (t3 - t4)) / 2`` from the echo with the smallest round trip of the last few.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop._proto import noizylab_display_pb2_grpc as dpb_grpc
from noizylab_desktop.core.errors import DisplayError, NoizyLabError, PairingError, TransportError
from noizylab_desktop.core.rpc_errors import error_from_rpc

FEEDBACK_EVERY_S = 0.25


@dataclass(frozen=True)
class ClockSample:
    offset_s: float  # host clock minus viewer clock
    rtt_s: float


class Clock:
    """The host's clock as the viewer estimates it."""

    def __init__(self, keep: int = 16) -> None:
        self._samples: deque[ClockSample] = deque(maxlen=keep)

    def add(self, echo: dpb.ClockEcho, received_at: float) -> None:
        t1, t2, t3, t4 = echo.viewer_sent_at, echo.host_received_at, echo.host_sent_at, received_at
        self._samples.append(ClockSample(((t2 - t1) + (t3 - t4)) / 2, max(0.0, (t4 - t1) - (t3 - t2))))

    @property
    def offset_s(self) -> float:
        """Host minus viewer, from the sample with the least round trip (0 until the first echo)."""
        return min(self._samples, key=lambda s: s.rtt_s).offset_s if self._samples else 0.0

    @property
    def rtt_s(self) -> float:
        return min((s.rtt_s for s in self._samples), default=0.0)


class ViewerSession:
    """``async with ViewerSession(channel, peer_name, monitor=1) as session: async for frame in session.frames()``."""

    def __init__(
        self, channel: grpc.aio.Channel, peer_name: str, monitor: int = 0, control: bool = False, max_fps: int = 0
    ) -> None:
        self.peer_name = peer_name
        self._stub = dpb_grpc.DisplayStub(channel)
        self._start = dpb.StartSession(monitor=monitor, control=control, max_fps=max_fps)
        self._call: Any = None
        self._write_lock = asyncio.Lock()
        self.info = dpb.SessionInfo()
        self.clock = Clock()
        self.last_seq = 0
        self.decode_ms = 0.0
        self.paint_ms = 0.0
        self.queue_depth = 0
        self._feedback_task: asyncio.Task[None] | None = None
        self.closed = False
        self.heard_at = time.monotonic()  # when the host last sent anything (frames, keep-alives, echoes)

    def _error(self, exc: grpc.aio.AioRpcError) -> NoizyLabError:
        where = f"the node for {self.peer_name}"
        return error_from_rpc(
            exc,
            where,
            # A TransportError, as every other way of losing the host: the viewer reconnects after it.
            unavailable=TransportError(f"{self.peer_name} does not answer: is its node running and online?"),
            deadline=TransportError(f"{where} did not answer in time: see `noizylab logs`"),
            refused=PairingError,
        )

    async def __aenter__(self) -> ViewerSession:
        self._call = self._stub.Session()
        try:
            await self._call.write(dpb.ViewerMessage(start=self._start))
            first = await self._call.read()
            while first is not grpc.aio.EOF and not first.HasField("info"):
                first = await self._call.read()  # a keep-alive from an older host: the info follows
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        if first is grpc.aio.EOF:
            raise DisplayError(f"{self.peer_name} ended the session before sending a picture")
        self.info = first.info
        self._feedback_task = asyncio.ensure_future(self._feedback_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End the session (``frames`` then simply stops)."""
        self.closed = True
        if self._feedback_task is not None:
            self._feedback_task.cancel()
        if self._call is not None:
            self._call.cancel()

    async def frames(self) -> AsyncIterator[dpb.VideoFrame]:
        """Every frame (keep-alives included: they have no data), until the host ends the session."""
        while True:
            try:
                message = await self._call.read()
            except asyncio.CancelledError:
                # A read on a call we cancelled ourselves raises CancelledError; that is the normal end.
                if self.closed:
                    return
                raise
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED and self.closed:
                    return
                raise self._error(exc) from exc
            if message is grpc.aio.EOF:
                return
            self.heard_at = time.monotonic()
            kind = message.WhichOneof("kind")
            if kind == "frame":
                yield message.frame
            elif kind == "echo":
                self.clock.add(message.echo, time.time())
            elif kind == "info":
                self.info = message.info

    async def _send(self, message: dpb.ViewerMessage) -> None:
        async with self._write_lock:
            try:
                await self._call.write(message)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                pass  # the session is ending; ``frames`` reports why

    async def send_input(self, event: dpb.InputEvent) -> None:
        await self._send(dpb.ViewerMessage(input=event))

    async def select_monitor(self, index: int) -> None:
        await self._send(dpb.ViewerMessage(monitor=dpb.SelectMonitor(monitor=index)))

    async def send_feedback(self) -> None:
        feedback = dpb.Feedback(
            sent_at=time.time(),
            last_seq=self.last_seq,
            decode_ms=self.decode_ms,
            queue_depth=self.queue_depth,
            paint_ms=self.paint_ms,
        )
        await self._send(dpb.ViewerMessage(feedback=feedback))

    async def _feedback_loop(self) -> None:
        while True:
            await self.send_feedback()
            await asyncio.sleep(FEEDBACK_EVERY_S)  # a period, not synchronisation
