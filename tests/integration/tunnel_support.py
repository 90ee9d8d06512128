"""Servers a tunnel leads to, on the test's own loop in a thread: HTTP and a WebSocket echo (aiohttp), a raw byte
echo, a sink that answers the SHA-256 of everything it read once the client half-closes, and a source that sends
``SOURCE_BYTES`` of random bytes to each connection, recording how far it got and since when it has been held back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

PAGE = b"<h1>served through a tunnel</h1>"
SOURCE_BYTES = 96 * 1024 * 1024
SOURCE_BLOCK = 256 * 1024


@dataclass
class Source:
    """What the source sends to every connection, and how its latest connection is going."""

    data: bytes = b""
    sent: int = 0  # bytes the socket took (the source's own transport holds at most one block more)
    held_since: float | None = None  # monotonic time its latest write started waiting for the socket; None: not now


@dataclass
class Targets:
    http: int = 0
    echo: int = 0
    sink: int = 0
    source: int = 0
    sourced: Source = field(default_factory=Source)
    peers: list[str] = field(default_factory=list)  # the address each echo connection came from


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[str]) -> None:
    seen.append(writer.get_extra_info("peername")[0])
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    digest = hashlib.sha256()
    while data := await reader.read(1 << 20):
        digest.update(data)
    writer.write(digest.hexdigest().encode())
    await writer.drain()
    writer.close()


async def _source(writer: asyncio.StreamWriter, state: Source) -> None:
    state.sent, state.held_since = 0, None
    view = memoryview(state.data)
    for at in range(0, len(view), SOURCE_BLOCK):
        writer.write(view[at : at + SOURCE_BLOCK])
        if writer.transport.get_write_buffer_size():
            state.held_since = time.monotonic()
            await writer.drain()
            state.held_since = None
        state.sent = at + SOURCE_BLOCK
    writer.close()


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html")


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(f"echo: {message.data}")
    return ws


@contextmanager
def targets(host: str = "127.0.0.1") -> Iterator[Targets]:
    """The servers, each on a free port of ``host``, until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    found = Targets()
    stop = asyncio.Event()

    async def main() -> None:
        app = web.Application()
        app.add_routes([web.get("/", _page), web.get("/ws", _ws)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        found.http = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        echo = await asyncio.start_server(lambda r, w: _echo(r, w, found.peers), host, 0)
        sink = await asyncio.start_server(_sink, host, 0)
        found.sourced.data = os.urandom(SOURCE_BYTES)
        source = await asyncio.start_server(lambda _, w: _source(w, found.sourced), host, 0)
        found.source = source.sockets[0].getsockname()[1]
        found.echo = echo.sockets[0].getsockname()[1]
        found.sink = sink.sockets[0].getsockname()[1]
        ready.set()
        await stop.wait()
        echo.close()
        sink.close()
        source.close()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield found
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def exchange(port: int, data: bytes, timeout: float = 20.0) -> bytes:
    """Send ``data`` to 127.0.0.1:``port``, half-close, and read everything the other side sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
