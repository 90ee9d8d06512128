"""One local TCP connection of a tunnel, read straight into the data frame that carries its bytes.

A ``StreamReader`` copied each chunk four times before gRPC saw it (``recv`` into a new bytes object, appended to
the reader's buffer, sliced out of it, the rest of the buffer moved to its front) and the frame's header was joined
on with a fifth. Here the socket is read with ``recv_into`` straight into one buffer that keeps room for the header
in front (``wire.HEADER``), and ``read_frame`` makes the serialised frame with one copy. While the frame before is
still being written to the stream, the socket goes on filling the buffer, so under load frames grow up to the
buffer's size and the stream sees fewer, larger messages; with a single small message waiting, it goes at once.

Back-pressure: a full buffer pauses reading until the pump takes a frame, so a connection holds at most one buffer
here (plus what a proactor transport had read before it paused: at most ``OVERFLOW``) and the frame on its way;
writes towards the socket wait (``drain``) while the transport's buffer is above its high-water mark. End-of-file
leaves the transport open for writing, so half-closed connections work both ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from noizylab_desktop.services.tunnel import wire

# Windows' proactor transports read into a 64 KiB buffer of their own and hand all of it over, in pieces, whatever the
# protocol asked in between: a buffer that filled part way through such a hand-over grows by what is left.
OVERFLOW = 64 * 1024


class LocalSocket(asyncio.BufferedProtocol):
    """The tunnel's end of one local TCP connection (a protocol for ``create_server`` or ``create_connection``)."""

    def __init__(self, chunk: int, made: Callable[[LocalSocket], None] | None = None) -> None:
        self._limit = wire.HEADER + chunk  # reading pauses once the buffer holds this much
        self._buf = bytearray(self._limit)
        self._view = memoryview(self._buf)
        self._fill = wire.HEADER
        self._made = made
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    # ------------------------------------------------------------------ asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # One frame may wait in the transport before writes wait: the socket usually takes it whole at once.
        transport.set_write_buffer_limits(high=self._limit)
        if self._made is not None:
            self._made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._fill < self._limit:
            return self._view[self._fill : self._limit]
        if self._fill == len(self._buf):  # paused, yet the transport still has bytes it read before (proactor)
            self._grow(max(sizehint, 1))
        return self._view[self._fill :]

    def _grow(self, more: int) -> None:
        grown = bytearray(len(self._buf) + more)
        grown[: self._fill] = self._view[: self._fill]
        self._buf, self._view = grown, memoryview(grown)

    def buffer_updated(self, nbytes: int) -> None:
        self._fill += nbytes
        if self._fill >= self._limit and self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return True  # keep writing: the other direction may still carry bytes (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof = True
        if exc is not None:
            self._error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # ------------------------------------------------------------------ the pump's side

    @property
    def buffered(self) -> int:
        """Bytes read from the socket that no frame has taken yet."""
        return self._fill - wire.HEADER

    async def read_frame(self) -> tuple[bytes, int] | None:
        """The next serialised data frame of everything read so far and its data's size; None at end-of-file."""
        while self._fill == wire.HEADER:
            if self._error is not None:
                raise ConnectionError(f"the local connection failed: {self._error}") from self._error
            if self._eof:
                return None
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        size = self._fill - wire.HEADER
        start = wire.put_header(self._buf, size)
        frame = bytes(self._view[start : self._fill])
        self._fill = wire.HEADER
        if self._reading_paused and self.transport is not None and not self._lost:
            self._reading_paused = False
            self.transport.resume_reading()
        return frame, size

    def write(self, data: bytes | memoryview) -> None:
        """Send ``data`` to the socket (the transport keeps what the socket does not take at once)."""
        if self._lost or self.transport is None:
            raise ConnectionResetError("the local connection is closed")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport holds more than its high-water mark."""
        while self._writing_paused and not self._lost:
            self._writable = asyncio.get_running_loop().create_future()
            try:
                await self._writable
            finally:
                self._writable = None
        if self._lost:
            raise ConnectionResetError("the local connection is closed")

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused

    def write_eof(self) -> None:
        """Half-close: no more bytes towards the socket."""
        if self.transport is not None and not self._lost and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
