"""The forwarding side: one listener per tunnel, one gRPC stream to the peer per connection it accepts.

The listener stays bound while the peer is away, restarts or moves: each new connection asks the registry for the
peer's channel at that moment (the registry follows the peer's address), and while the peer does not answer it
retries with backoff from ``backoff_min_s`` doubling to ``backoff_max_s`` (retrying at once when the peer comes
back online) for up to ``wait_s``, then gives up on that connection. A refusal (no permission, no rule, nothing
listening there) is not retried: the connection closes and the tunnel shows the peer's one-line reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeAlias

import grpc

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop.core.errors import NoizyLabError, PermissionRefusedError, TunnelError
from noizylab_desktop.core.registry import PeerState, Registry
from noizylab_desktop.core.rpc_errors import error_from_rpc
from noizylab_desktop.services.tunnel import wire
from noizylab_desktop.services.tunnel.local import LocalSocket
from noizylab_desktop.services.tunnel.pump import Link, Traffic, pump
from noizylab_desktop.services.tunnel.settings import TunnelSettings
from noizylab_desktop.services.tunnel.store import TunnelRecord

logger = logging.getLogger(__name__)

READY_S = 10.0  # the serving side connects to its port within 5 s, then answers
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

Call: TypeAlias = "grpc.aio.StreamStreamCall[wire.Outgoing, wire.Frame]"


def refusal(exc: grpc.aio.AioRpcError, peer: str) -> NoizyLabError:
    """What a failed ``Open`` stands for, in one line."""
    return error_from_rpc(
        exc,
        peer,
        unauthenticated=PermissionRefusedError(f"{peer} no longer trusts this node: pair them again"),
        refused=PermissionRefusedError,
        failed=TunnelError,
    )


class Forwarder:
    """One tunnel: ``bind:local_port`` here to 127.0.0.1:``port`` on the peer."""

    def __init__(
        self,
        record: TunnelRecord,
        fp: bytes,
        registry: Registry,
        settings: TunnelSettings,
        changed: Callable[[Forwarder], None],
    ) -> None:
        self.record = record
        self.fp = fp
        self.registry = registry
        self.settings = settings
        self.changed = changed
        self.traffic = Traffic()
        self.total = 0
        self.since = 0.0
        self.state = "stopped"
        self.last_error = ""
        self.connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._wake = asyncio.Event()

    @property
    def peer_state(self) -> PeerState | None:
        return next((s for s in self.registry.peers() if s.peer.fingerprint == self.fp), None)

    @property
    def peer_name(self) -> str:
        state = self.peer_state
        return state.peer.name if state is not None else "the peer"

    async def bind(self) -> None:
        """Listen on the tunnel's local port (``OSError`` when it is taken)."""
        chunk = self.settings.chunk_bytes
        self._server = await asyncio.get_running_loop().create_server(
            lambda: LocalSocket(chunk, self._accepted), self.record.bind, self.record.local_port
        )
        if not self.record.local_port:
            self.record = TunnelRecord(**{**self.record.__dict__, "local_port": self.port_bound()})
        self.since = time.time()
        self._set("listening")

    def port_bound(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        self._set("stopped")

    def peer_online(self) -> None:
        """The peer is back: connections waiting for it try again now."""
        self._wake.set()
        self._wake = asyncio.Event()

    def _set(self, state: str, error: str = "") -> None:
        if state == "listening" and self.connections:
            state = "open"
        changed = state != self.state or (error and error != self.last_error)
        self.state = state
        if error:
            self.last_error = error
        if changed:
            self.changed(self)

    # ------------------------------------------------------------------ the peer's stream

    async def open(self, probe: bool = False, wait_s: float | None = None) -> Call:
        """A stream to the peer's port that it answered ``ready`` on; waits for the peer with backoff."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settings.wait_s if wait_s is None else wait_s)
        delay = 0.0
        while True:
            state = self.peer_state
            if state is None:
                raise TunnelError("that peer is no longer paired with this node")
            call: Call = wire.open_stream(self.registry.channel(state))()
            try:
                await call.write(tpb.TunnelFrame(open=tpb.TunnelOpen(port=self.record.port, probe=probe)))
                first = await asyncio.wait_for(call.read(), READY_S)
                if first is grpc.aio.EOF or not first.ready:
                    raise TunnelError(f"{state.peer.name} ended the tunnel before it was ready")
                return call
            except grpc.aio.AioRpcError as exc:
                call.cancel()
                if exc.code() not in RETRIED:
                    raise refusal(exc, state.peer.name) from exc
                why = f"{state.peer.name} does not answer"
            except TimeoutError:
                call.cancel()
                why = f"{state.peer.name} did not answer in time"
            except BaseException:
                call.cancel()
                raise
            delay = min(self.settings.backoff_max_s, max(self.settings.backoff_min_s, delay * 2))
            if loop.time() + delay > deadline:
                raise TunnelError(f"{why}: gave up after {self.settings.wait_s if wait_s is None else wait_s:g} s")
            if not probe:
                self._set("waiting", why)
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({wake}, timeout=delay)
            finally:
                wake.cancel()

    # ------------------------------------------------------------------ one local connection

    def _accepted(self, local: LocalSocket) -> None:
        task = asyncio.ensure_future(self._carry(local))
        task.add_done_callback(lambda _: local.close())  # also when cancelled before it ran (``close``)
        self.connections.add(task)
        self.total += 1

    async def _carry(self, local: LocalSocket) -> None:
        task = asyncio.current_task()
        conn = Traffic()
        call: Call | None = None
        try:
            call = await self.open()
            self._set("open")

            async def receive() -> wire.Frame | None:
                assert call is not None
                frame = await call.read()
                return None if frame is grpc.aio.EOF else frame

            await pump(
                local,
                Link(send=call.write, receive=receive),
                (conn, self.traffic),
                ping_s=self.settings.ping_s,
                dead_s=self.settings.dead_s,
                pinger=True,
            )
        except grpc.aio.AioRpcError as exc:
            error = refusal(exc, self.peer_name)
            logger.info("tunnel to %s:%d: a connection ended: %s", self.peer_name, self.record.port, error.message)
            self.last_error = error.message
        except NoizyLabError as exc:
            logger.info("tunnel to %s:%d: a connection ended: %s", self.peer_name, self.record.port, exc.message)
            self._set("refused" if isinstance(exc, PermissionRefusedError) else self.state, exc.message)
        except (ConnectionError, OSError) as exc:
            logger.debug("tunnel to %s:%d: local connection ended: %s", self.peer_name, self.record.port, exc)
        finally:
            if call is not None:
                call.cancel()
            local.close()
            self.connections.discard(task)
            if self._server is not None and self.state in ("open", "waiting"):
                self._set("listening")
