"""The serving side: a peer's stream becomes one connection to 127.0.0.1:port on this machine.

A peer needs both the ``tunnel`` permission (checked by ``require_permission``, so denying it ends the stream
through the sessions registry) and a rule for that port (``noizylab tunnel allow PEER PORT``); removing the rule
ends that port's streams too. The host is always 127.0.0.1: the request names only a port, so a peer can reach
neither another machine nor this one's other interfaces through a tunnel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop.core.errors import InvalidRequestError, PermissionRefusedError, TunnelError
from noizylab_desktop.core.feature import first_message, require_permission
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.services.tunnel.local import LocalSocket
from noizylab_desktop.services.tunnel.pump import Link, Traffic, pump
from noizylab_desktop.services.tunnel.settings import TunnelSettings
from noizylab_desktop.services.tunnel.store import LOOPBACK, TunnelStore
from noizylab_desktop.services.tunnel.wire import Frame

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

SCOPE = "tunnel"
CONNECT_S = 5.0
FIRST_FRAME_S = 10.0
READY = tpb.TunnelFrame(ready=True)


class Server:
    """Streams peers opened to this node's ports, by (peer fingerprint, port), so a removed rule ends them."""

    def __init__(self, ctx: NodeContext, store: TunnelStore, settings: TunnelSettings) -> None:
        self.ctx = ctx
        self.store = store
        self.settings = settings
        self.traffic = Traffic()
        self.served = 0
        self.refused = 0
        self._open: defaultdict[tuple[bytes, int], set[asyncio.Event]] = defaultdict(set)

    def connections(self, fp: bytes, port: int) -> int:
        return len(self._open.get((fp, port), ()))

    def open_count(self) -> int:
        return sum(len(ends) for ends in self._open.values())

    def rule_removed(self, fp: bytes, port: int) -> None:
        """End the streams that relied on a rule just removed."""
        for end in self._open.get((fp, port), ()):
            end.set()

    async def refuse(self, context: grpc.aio.ServicerContext, exc: PermissionRefusedError) -> None:
        self.refused += 1
        await abort_with(context, exc)

    async def open(self, frames: AsyncIterator[Frame], context: grpc.aio.ServicerContext) -> None:
        """``Tunnel.Open``: check, connect to 127.0.0.1:port, answer ``ready``, then carry the connection."""
        # The first frame is read before any refusal: refusing first raced the peer's own first write, which grpc.aio
        # then reports as "Internal error from Core" in place of the refusal (grpc/grpc#36066). A peer that may not
        # open tunnels is refused before that frame is looked at, and one that sends nothing waits at most
        # FIRST_FRAME_S.
        first = await first_message(frames, FIRST_FRAME_S)
        fp = await require_permission(self.ctx, context, SCOPE)
        if not isinstance(first, tpb.TunnelFrame) or not first.HasField("open") or not 0 < first.open.port < 65536:
            await abort_with(context, InvalidRequestError("a tunnel must start with the port to open (1 to 65535)"))
        port = first.open.port
        name = self.ctx.settings.name
        if fp != self.ctx.identity.fingerprint and not self.store.allowed(fp.hex(), port):
            await self.refuse(
                context,
                PermissionRefusedError(
                    f"{name} does not allow tunnels to its port {port} for this peer: allow it there with "
                    f"`noizylab tunnel allow PEER {port}`"
                ),
            )
        if first.open.probe:
            await context.write(READY)
            return
        try:
            chunk = self.settings.chunk_bytes
            _, local = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(lambda: LocalSocket(chunk), LOOPBACK, port), CONNECT_S
            )
        except (OSError, TimeoutError):
            await abort_with(context, TunnelError(f"nothing answers on {name}'s port {port} (on 127.0.0.1)"))
        ended = asyncio.Event()
        self._open[(fp, port)].add(ended)
        self.served += 1
        logger.info("tunnel from %s to port %d opened", format_id(fp)[:11], port)
        link = Link(send=context.write, receive=lambda: anext(frames, None))
        carry = pump(
            local,
            link,
            (self.traffic,),
            ping_s=self.settings.ping_s,
            dead_s=self.settings.dead_s,
            pinger=False,
        )
        work = stop = None
        try:
            await context.write(READY)
            work, stop = asyncio.ensure_future(carry), asyncio.ensure_future(ended.wait())
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if ended.is_set():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                await abort_with(context, PermissionRefusedError(f"{name} no longer allows tunnels to port {port}"))
            try:
                work.result()
            except (ConnectionError, TunnelError) as exc:
                # The connection on this machine reset, or the forwarding side went silent: end the stream.
                logger.info("tunnel from %s to port %d ended: %s", format_id(fp)[:11], port, exc)
        finally:
            for task in (work, stop):
                if task is not None:
                    task.cancel()
            if work is None:
                carry.close()
            local.close()
            self._open[(fp, port)].discard(ended)
            if not self._open[(fp, port)]:
                del self._open[(fp, port)]
