"""The tunnel feature: ``noizylab forward PEER PORT`` here, ``Tunnel.Open`` streams there.

Forwarding side (``forward.py``): tunnels persist in the state folder and are bound again when the node starts; the
local port is the remote one when free, else a fallback remembered per (peer, port); 127.0.0.1 unless the person
binds another address. Serving side (``serve.py``): the ``tunnel`` permission plus a rule per (peer, port).
Unpairing a peer closes its tunnels here (a session in the sessions registry) and ends its streams there (the
Guard's session, which ``require_permission`` marks with the ``tunnel`` scope, so deny ends them too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop._proto import noizylab_tunnel_pb2_grpc as tpb_grpc
from noizylab_desktop.core.errors import ConfigError, NoizyLabError, PermissionRefusedError, TunnelError
from noizylab_desktop.core.events import Event, PeerOnline, PeerUnpaired
from noizylab_desktop.core.feature import Figure, require_self
from noizylab_desktop.core.nodeid import format_id, parse_id
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.sessions import Ending, Session
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.core.totp import require_step_up
from noizylab_desktop.services.tunnel import wire
from noizylab_desktop.services.tunnel.events import TunnelChanged
from noizylab_desktop.services.tunnel.forward import Forwarder
from noizylab_desktop.services.tunnel.serve import SCOPE, Server
from noizylab_desktop.services.tunnel.settings import SECTION, TunnelSettings
from noizylab_desktop.services.tunnel.store import LOOPBACK, TunnelRecord, TunnelStore

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)


def _loopback(bind: str) -> bool:
    """Whether ``bind`` listens on this machine only (an address that is not one is refused later, by ``forward``)."""
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return True


Key = tuple[str, int]  # (peer fingerprint hex, remote port)


class TunnelFeature(tpb_grpc.TunnelServicer):
    """Tunnels this node forwards, and the streams it serves."""

    name = "tunnel"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.settings = parse_section(TunnelSettings, ctx.settings.section(SECTION))
        self.store = TunnelStore(ctx.paths.state_dir / "tunnels.json")
        self.server = Server(ctx, self.store, self.settings)
        self.forwarders: dict[Key, Forwarder] = {}
        self._sessions: dict[Key, Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unlisten: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        wire.add_to_server(self, server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return ("noizylab.grid.v1.Tunnel",)

    async def start(self) -> None:
        self._unlisten = self.ctx.bus.listen(self._on_event)
        for record in list(self.store.tunnels):
            peer = self.ctx.trust.get(bytes.fromhex(record.peer))
            if peer is None:
                self.store.drop(record.peer, record.port)
                continue
            try:
                await self._start_forwarder(record, peer.fingerprint)
            except TunnelError as exc:
                logger.warning("tunnel to %s:%d stays closed: %s", peer.name, record.port, exc.message)

    async def stop(self) -> None:
        self._unlisten()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for key in list(self.forwarders):
            await self._close(key)

    def figures(self) -> Iterable[Figure]:
        forwarders = list(self.forwarders.values())
        yield Figure("noizylab_tunnel_tunnels", "Tunnels this node forwards", len(forwarders))
        yield Figure(
            "noizylab_tunnel_connections",
            "Connections open through this node's tunnels",
            sum(len(f.connections) for f in forwarders),
        )
        served = self.server.open_count()
        yield Figure("noizylab_tunnel_served_connections", "Peers' tunnel connections served now", served)
        for direction, value in (
            ("in", sum(f.traffic.bytes_in for f in forwarders)),
            ("out", sum(f.traffic.bytes_out for f in forwarders)),
        ):
            yield Figure(
                "noizylab_tunnel_bytes_total",
                "Bytes through this node's tunnels",
                value,
                "counter",
                {"direction": direction},
            )
        refused = self.server.refused
        yield Figure("noizylab_tunnel_refused_total", "Tunnel streams this node refused", refused, "counter")

    # ------------------------------------------------------------------ forwarding

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self, forwarder: Forwarder) -> None:
        peer = self.ctx.trust.get(forwarder.fp)
        self.ctx.bus.publish(
            TunnelChanged(
                peer_id=format_id(forwarder.fp),
                peer_name=peer.name if peer else "",
                remote_port=forwarder.record.port,
                local_port=forwarder.record.local_port,
                state=forwarder.state,
            )
        )

    async def _start_forwarder(self, record: TunnelRecord, fp: bytes) -> Forwarder:
        """Bind ``record``'s listener, choosing its local port unless it is fixed; remembers the tunnel."""
        forwarder = Forwarder(record, fp, self.ctx.registry, self.settings, self._changed)
        if record.fixed:
            candidates = [record.local_port]
        else:
            fallback = self.store.fallbacks.get((record.peer, record.port))
            candidates = [record.port, *([fallback] if fallback else []), 0]
        for port in candidates:
            forwarder.record = TunnelRecord(**{**record.__dict__, "local_port": port})
            try:
                await forwarder.bind()
                break
            except OSError as exc:
                if record.fixed or port == 0:
                    raise TunnelError(
                        f"cannot listen on {record.bind}:{port} ({exc.strerror or exc}): choose another local "
                        f"port with `noizylab forward PEER {record.port}:LOCAL`"
                    ) from exc
        if port == 0:
            self.store.remember_fallback(record.peer, record.port, forwarder.record.local_port)
        key = (record.peer, record.port)
        self.forwarders[key] = forwarder
        self.store.put(forwarder.record)
        self._sessions[key] = self.ctx.sessions.open(
            fp, f"tunnel to port {record.port}", lambda ending: self._spawn(self._ended(key, ending))
        )
        return forwarder

    async def _ended(self, key: Key, ending: Ending) -> None:
        await self._close(key)
        if ending.unpaired:
            self.store.forget(key[0])

    async def _close(self, key: Key) -> None:
        forwarder = self.forwarders.pop(key, None)
        session = self._sessions.pop(key, None)
        if session is not None:
            self.ctx.sessions.close(session)
        if forwarder is not None:
            await forwarder.close()

    async def forward(self, ref: str, port: int, local_port: int = 0, bind: str = "") -> Forwarder:
        """Open (or return) the tunnel to ``ref``'s ``port``; refused at once when the peer refuses it."""
        if not 0 < port < 65536 or not 0 <= local_port < 65536:
            raise ConfigError(f"ports run from 1 to 65535, not {port if not 0 < port < 65536 else local_port}")
        bind = bind or LOOPBACK
        try:
            ipaddress.ip_address(bind)
        except ValueError as exc:
            raise ConfigError(f"{bind!r} is not an IP address to listen on: use 127.0.0.1 or 0.0.0.0") from exc
        peer = self.ctx.trust.find(ref)
        key = (peer.fingerprint.hex(), port)
        if key in self.forwarders:
            return self.forwarders[key]
        record = TunnelRecord(peer.fingerprint.hex(), port, local_port, bind, fixed=bool(local_port))
        probe = Forwarder(record, peer.fingerprint, self.ctx.registry, self.settings, lambda _: None)
        note = ""
        try:
            call = await probe.open(probe=True, wait_s=0)
            call.cancel()
        except PermissionRefusedError:
            raise
        except TunnelError as exc:
            note = f"{exc.message}; new connections wait for it"  # the peer is away: the tunnel waits for it
        forwarder = await self._start_forwarder(record, peer.fingerprint)
        forwarder.last_error = note
        logger.info("forwarding %s:%d to %s's port %d", bind, forwarder.record.local_port, peer.name, port)
        return forwarder

    async def stop_forward(self, ref: str, port: int) -> int:
        """Close the tunnels to ``ref``'s ``port`` (every port: 0); how many closed."""
        peer = self.ctx.trust.find(ref)
        keys = [k for k in self.forwarders if k[0] == peer.fingerprint.hex() and port in (0, k[1])]
        if not keys:
            raise TunnelError(f"no tunnel to {peer.name}{f':{port}' if port else ''}: see `noizylab tunnels`")
        for key in keys:
            await self._close(key)
            self.store.drop(*key)
        return len(keys)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PeerOnline):
            for forwarder in self.forwarders.values():
                if format_id(forwarder.fp) == event.peer_id:
                    forwarder.peer_online()
        elif isinstance(event, PeerUnpaired):
            fp = parse_id(event.peer_id)
            for key in [k for k in self.forwarders if k[0] == fp.hex()]:
                self._spawn(self._close(key))
            self.store.forget(fp.hex())

    def info(self, forwarder: Forwarder) -> tpb.TunnelInfo:
        peer = self.ctx.trust.get(forwarder.fp)
        return tpb.TunnelInfo(
            peer_id=format_id(forwarder.fp),
            peer_name=peer.name if peer else "",
            remote_port=forwarder.record.port,
            local_port=forwarder.record.local_port,
            bind=forwarder.record.bind,
            state=forwarder.state,
            connections=len(forwarder.connections),
            bytes_in=forwarder.traffic.bytes_in,
            bytes_out=forwarder.traffic.bytes_out,
            since=forwarder.since,
            last_error=forwarder.last_error,
            total_connections=forwarder.total,
        )

    def tunnels(self) -> tpb.TunnelList:
        return tpb.TunnelList(tunnels=[self.info(f) for f in self.forwarders.values()])

    # ------------------------------------------------------------------ serving rules

    def set_rule(self, ref: str, port: int, allowed: bool) -> None:
        """Allow or refuse ``ref`` this node's ``port``; allowing also turns the peer's ``tunnel`` scope on."""
        if not 0 < port < 65536:
            raise ConfigError(f"ports run from 1 to 65535, not {port}")
        peer = self.ctx.trust.find(ref)
        self.store.set_rule(peer.fingerprint.hex(), port, allowed)
        if allowed and not self.ctx.permissions.allowed(peer.fingerprint, SCOPE):
            self.ctx.permissions.set(peer.fingerprint, SCOPE, True, peer.node_id)
        if not allowed:
            self.server.rule_removed(peer.fingerprint, port)

    def rules(self) -> tpb.TunnelRules:
        rules = []
        for fp_hex, port in sorted(self.store.rules):
            peer = self.ctx.trust.get(bytes.fromhex(fp_hex))
            if peer is None:
                continue
            rules.append(
                tpb.TunnelRule(
                    peer_id=peer.node_id,
                    peer_name=peer.name,
                    port=port,
                    scope_on=self.ctx.permissions.allowed(peer.fingerprint, SCOPE),
                    connections=self.server.connections(peer.fingerprint, port),
                )
            )
        return tpb.TunnelRules(rules=rules)

    # ------------------------------------------------------------------ RPCs

    # Written with ``context.write`` (the pump answers pings beside the data), not yielded: hence the override.
    async def Open(  # type: ignore[override]  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[wire.Frame], context: grpc.aio.ServicerContext
    ) -> None:
        await self.server.open(request_iterator, context)

    async def Forward(  # noqa: N802
        self, request: tpb.ForwardRequest, context: grpc.aio.ServicerContext
    ) -> tpb.TunnelList:
        await require_self(self.ctx, context)
        if not _loopback(request.bind or LOOPBACK):
            await require_step_up(self.ctx.totp, context, f"opening a tunnel on {request.bind}, beyond loopback,")
        try:
            forwarder = await self.forward(request.peer, request.port, request.local_port, request.bind)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return tpb.TunnelList(tunnels=[self.info(forwarder)])

    async def StopForward(  # noqa: N802
        self, request: tpb.StopForwardRequest, context: grpc.aio.ServicerContext
    ) -> tpb.TunnelList:
        await require_self(self.ctx, context)
        try:
            await self.stop_forward(request.peer, request.port)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return self.tunnels()

    async def List(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> tpb.TunnelList:  # noqa: N802
        await require_self(self.ctx, context)
        return self.tunnels()

    async def SetRule(  # noqa: N802
        self, request: tpb.TunnelRuleRequest, context: grpc.aio.ServicerContext
    ) -> tpb.TunnelRules:
        await require_self(self.ctx, context)
        try:
            self.set_rule(request.peer, request.port, request.allowed)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return self.rules()

    async def Rules(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> tpb.TunnelRules:  # noqa: N802
        await require_self(self.ctx, context)
        return self.rules()
