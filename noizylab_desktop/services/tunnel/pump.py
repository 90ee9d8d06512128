"""One TCP connection's bytes between its socket and the gRPC stream that carries it, in both directions.

Both ends run the same pump over a ``Link`` (the forwarding side's call, the serving side's context) and a
``LocalSocket``. A socket that reads end-of-file sends an ``eof`` frame and the other end half-closes its socket
(``write_eof``), so protocols that shut down their writing side first still work. The forwarding end pings every
``ping_s``; either end that hears nothing for ``dead_s`` takes the link for dead and ends the connection. Writes to
a stream are serialised (gRPC allows one at a time); while one is on its way the socket keeps filling the next frame
(``local.py``). Back-pressure comes from gRPC's flow control, the local buffer pausing the socket when full, and the
socket's ``drain``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop.core.errors import TunnelError
from noizylab_desktop.services.tunnel.local import LocalSocket
from noizylab_desktop.services.tunnel.wire import Frame, Outgoing

PONG = tpb.TunnelFrame(pong=True)
PING = tpb.TunnelFrame(ping=True)
EOF = tpb.TunnelFrame(eof=True)


@dataclass
class Traffic:
    """Bytes one connection (or a tunnel's connections together) carried."""

    bytes_in: int = 0  # from the peer
    bytes_out: int = 0  # to the peer


@dataclass(frozen=True)
class Link:
    """One stream as the pump sees it: ``send`` a frame (bytes: a data frame, ``wire``), ``receive`` the next (None
    when the stream ended)."""

    send: Callable[[Outgoing], Awaitable[None]]
    receive: Callable[[], Awaitable[Frame | None]]


async def pump(
    local: LocalSocket,
    link: Link,
    traffics: tuple[Traffic, ...],
    *,
    ping_s: float,
    dead_s: float,
    pinger: bool,
) -> None:
    """Carry the connection until it is over; raises what broke it (``TunnelError`` for a dead link)."""
    loop = asyncio.get_running_loop()
    lock = asyncio.Lock()
    heard = loop.time()
    sent_eof = got_eof = False
    over = asyncio.Event()

    async def send(frame: Outgoing) -> None:
        async with lock:
            await link.send(frame)

    def check_over() -> None:
        # The forwarding end waits for the serving end to finish the call; the serving end finishes it.
        if sent_eof and got_eof and not pinger:
            over.set()

    async def up() -> None:
        nonlocal sent_eof
        while (read := await local.read_frame()) is not None:
            frame, size = read
            for traffic in traffics:
                traffic.bytes_out += size
            await send(frame)
        await send(EOF)
        sent_eof = True
        check_over()

    async def down() -> None:
        nonlocal heard, got_eof
        while (frame := await link.receive()) is not None:
            heard = loop.time()
            data = frame.data  # read once: protobuf copies a bytes field on every read
            if data:
                for traffic in traffics:
                    traffic.bytes_in += len(data)
                local.write(data)
                if local.writing_paused:
                    await local.drain()
            if frame.eof:
                got_eof = True
                local.write_eof()
                check_over()
            if frame.ping:
                await send(PONG)
        over.set()

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(ping_s)
            if loop.time() - heard > dead_s:
                raise TunnelError(f"the peer sent nothing for {dead_s:g} s: the link is dead")
            if pinger:
                await send(PING)

    tasks = {asyncio.ensure_future(work) for work in (up(), down(), watchdog())}
    waiter = asyncio.ensure_future(over.wait())
    try:
        while not over.is_set():
            done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {waiter}:
                tasks.discard(task)
                task.result()  # an up that finished cleanly is fine; anything that raised ends the connection
    finally:
        waiter.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
