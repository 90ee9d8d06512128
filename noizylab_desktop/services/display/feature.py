"""The display feature: serves viewing sessions to paired peers that may see (and control) this screen.

Consent: a peer needs the ``display`` scope to view and ``control`` to send input. When it has neither and the
tray is running, the tray asks the person (``consent`` hook; view only is the default answer) and the answer is
kept as the peer's permissions. A headless node has no one to ask and refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop._proto import noizylab_display_pb2_grpc as dpb_grpc
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.errors import DisplayError, NoizyLabError, PermissionRefusedError, TransportError
from noizylab_desktop.core.feature import Figure, require_self
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.sessions import uses_scope
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.core.transport import caller_fingerprint
from noizylab_desktop.core.trust import TrustedPeer
from noizylab_desktop.services.display.events import ScreenShared, ScreenUnshared
from noizylab_desktop.services.display.host import HostStream
from noizylab_desktop.services.display.inject import InputSink
from noizylab_desktop.services.display.settings import DisplaySettings
from noizylab_desktop.services.display.sinks import open_sink

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
CONSENT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Consent:
    """The person's answer to ``PEER wants to see your screen``."""

    view: bool
    control: bool = False


ConsentAsker = Callable[[TrustedPeer, bool], Awaitable[Consent]]


@dataclass
class Session:
    id: int
    peer: TrustedPeer
    control: bool
    started: float
    stream: HostStream


class DisplayFeature:
    """Remote desktop, host side."""

    name = "display"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.config = parse_section(DisplaySettings, ctx.settings.section("display"))
        # Set by the tray: asks the person about a peer's first session. None (headless): refuse.
        self.consent: ConsentAsker | None = None
        self.sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        self._frames_sent = 0
        self._bytes_sent = 0
        self._dropped = 0
        self.viewer_ms: dict[int, float] = {}  # per live session, the viewer's last decode + paint time

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        dpb_grpc.add_DisplayServicer_to_server(DisplayApi(self), server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return ("noizylab.grid.v1.Display",)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        # A TransportError: the viewer shows "disconnected — reconnecting…" and comes back with this node.
        self.end_all(TransportError(f"{self.ctx.settings.name}'s node is stopping"))

    def figures(self) -> Iterable[Figure]:
        yield Figure("noizylab_display_sessions", "Viewing sessions open now", float(len(self.sessions)))
        live = [s.stream.stats() for s in self.sessions.values()]
        sent = self._frames_sent + sum(s.encoded for s in live)
        size = self._bytes_sent + sum(s.bytes_sent for s in live)
        dropped = self._dropped + sum(s.dropped for s in live)
        yield Figure("noizylab_display_frames_sent_total", "Encoded frames sent to viewers", float(sent), "counter")
        yield Figure("noizylab_display_bytes_sent_total", "Encoded bytes sent to viewers", float(size), "counter")
        yield Figure("noizylab_display_frames_dropped_total", "Captured frames dropped", float(dropped), "counter")
        yield Figure("noizylab_display_frame_rate_hertz", "Frame rate aimed at, all viewers", sum(s.fps for s in live))
        yield Figure(
            "noizylab_display_bitrate_bytes_per_second",
            "Encoder bitrate aimed at, all viewers",
            sum(s.kbps for s in live) * 1e3 / 8,
        )
        shown = [self.viewer_ms[key] for key in map(id, self.sessions.values()) if key in self.viewer_ms]
        yield Figure(
            "noizylab_display_viewer_latency_seconds",
            "Decode plus paint time the slowest viewer reported last",
            max(shown, default=0.0) / 1e3,
        )

    def end_all(self, why: NoizyLabError | None = None) -> None:
        """Stop sharing the screen with everyone (the tray's ``Stop sharing``), telling each viewer ``why``."""
        why = why or DisplayError(f"{self.ctx.settings.name} stopped sharing its screen")
        for session in list(self.sessions.values()):
            session.stream.queue.put_nowait(why)  # the session ends with it at once, keep-alives or not
            session.stream.stop()

    # ------------------------------------------------------------------ consent

    def may_ask(self, peer: TrustedPeer) -> None:
        """Raise unless ``peer`` may view or there is a person to ask (a tray): checked before a session is read."""
        if self.consent is None and not self.ctx.permissions.allowed(peer.fingerprint, "display"):
            raise self._refusal()

    def _refusal(self) -> PermissionRefusedError:
        return PermissionRefusedError(
            f"{self.ctx.settings.name} does not allow display for this peer: allow it there with "
            "`noizylab allow PEER display` or from its tray"
        )

    async def grant(self, peer: TrustedPeer, wants_control: bool) -> bool:
        """Whether ``peer`` may view; returns whether it may also control. Raises when it may not view.

        The session relies on ``display`` (and on ``control`` when granted): denying either ends it."""
        uses_scope("display")
        allowed = self.ctx.permissions.for_peer(peer.fingerprint)
        if not allowed["display"] and self.consent is not None:
            try:
                answer = await asyncio.wait_for(self.consent(peer, wants_control), CONSENT_TIMEOUT_S)
            except TimeoutError:
                answer = Consent(view=False)
            if answer.view:
                self.ctx.permissions.set(peer.fingerprint, "display", True, peer.node_id)
                if answer.control:
                    self.ctx.permissions.set(peer.fingerprint, "control", True, peer.node_id)
                allowed = self.ctx.permissions.for_peer(peer.fingerprint)
            else:
                raise PermissionRefusedError(f"{self.ctx.settings.name}'s user declined to share the screen")
        if not allowed["display"]:
            raise self._refusal()
        if wants_control and allowed["control"]:
            uses_scope("control")
            return True
        return False

    # ------------------------------------------------------------------ one session

    async def serve(
        self, peer: TrustedPeer, start: dpb.StartSession, requests: AsyncIterator[dpb.ViewerMessage]
    ) -> AsyncIterator[dpb.HostMessage]:
        """Frames for one viewer; input and feedback from ``requests`` are applied as they come."""
        control = await self.grant(peer, start.control)
        note = ""
        if start.control and not control:
            name = self.ctx.settings.name
            note = f"view only: {name} does not allow control for you (`noizylab allow PEER control` there)"
        loop = asyncio.get_running_loop()
        sink: InputSink | None = None
        if control:
            try:
                sink = await asyncio.to_thread(open_sink)
            except DisplayError as exc:
                control, note = False, f"view only: {exc.message}"
        stream = HostStream(self.config, start.monitor, loop, start.max_fps)
        session = Session(next(self._ids), peer, control, time.time(), stream)
        self.sessions[session.id] = session
        self.ctx.bus.publish(ScreenShared(session=session.id, peer_id=peer.node_id, name=peer.name, control=control))
        logger.info("%s started viewing the screen (control: %s)", peer.name, control)
        # Input is applied in order on one thread: XTEST calls block on the X server for a moment.
        inputs = ThreadPoolExecutor(1, thread_name_prefix="display-input")
        reader = asyncio.ensure_future(self._read(session, requests, sink, inputs))
        reason = "the viewer left"
        stream.start()
        try:
            last_frame = time.monotonic()
            informed = False
            while True:
                # Keep-alives follow the last frame, not the queue: clock echoes pass through it every 250 ms.
                # None before the session's info: the viewer's first message must say what it will see.
                wait = last_frame + self.config.keepalive_s - time.monotonic() if informed else None
                try:
                    item = await asyncio.wait_for(stream.queue.get(), None if wait is None else max(0.0, wait))
                except TimeoutError:
                    last_frame = time.monotonic()
                    yield dpb.HostMessage(frame=dpb.VideoFrame(sent_at=time.time()))
                    continue
                if isinstance(item, BaseException):
                    reason = str(item)
                    raise item
                if item.HasField("info"):
                    informed = True
                    item.info.host_name = self.ctx.settings.name
                    item.info.control = control
                    item.info.note = note
                if item.HasField("frame"):
                    last_frame = time.monotonic()
                    item.frame.sent_at = time.time()
                    yield item
                    stream.written()
                else:
                    yield item
        finally:
            stream.stop()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if sink is not None:
                await loop.run_in_executor(inputs, sink.release_all)
                sink.close()
            inputs.shutdown(wait=False)
            stats = stream.stats()
            self._frames_sent += stats.encoded
            self._bytes_sent += stats.bytes_sent
            self._dropped += stats.dropped
            del self.sessions[session.id]
            self.viewer_ms.pop(id(session), None)
            await asyncio.to_thread(stream.join)
            self.ctx.bus.publish(
                ScreenUnshared(session=session.id, peer_id=peer.node_id, name=peer.name, reason=reason)
            )
            logger.info("%s stopped viewing the screen: %s", peer.name, reason)

    async def _read(
        self,
        session: Session,
        requests: AsyncIterator[dpb.ViewerMessage],
        sink: InputSink | None,
        inputs: ThreadPoolExecutor,
    ) -> None:
        loop = asyncio.get_running_loop()
        stream = session.stream
        async for message in requests:
            kind = message.WhichOneof("kind")
            if kind == "input" and sink is not None and stream.monitor is not None:
                monitor = stream.monitor
                size = (monitor.width - monitor.width % 2, monitor.height - monitor.height % 2)
                loop.run_in_executor(inputs, sink.inject, message.input, monitor, size)
            elif kind == "feedback":
                received = time.time()
                stream.observe(message.feedback.queue_depth > 1)
                self.viewer_ms[id(session)] = message.feedback.decode_ms + message.feedback.paint_ms
                echo = dpb.ClockEcho(
                    viewer_sent_at=message.feedback.sent_at, host_received_at=received, host_sent_at=time.time()
                )
                stream.queue.put_nowait(dpb.HostMessage(echo=echo))
            elif kind == "monitor":
                stream.select_monitor(message.monitor.monitor)


class DisplayApi(dpb_grpc.DisplayServicer):
    """The wire side of ``DisplayFeature``."""

    def __init__(self, feature: DisplayFeature) -> None:
        self.feature = feature

    async def Session(  # noqa: N802 (gRPC's name)
        self, request_iterator: AsyncIterator[dpb.ViewerMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[dpb.HostMessage]:
        ctx = self.feature.ctx
        fp = caller_fingerprint(context)
        peer = ctx.trust.get(fp) if fp is not None else None
        if peer is None:
            await abort_with(context, PermissionRefusedError("only a paired peer may view this screen"))
        assert peer is not None
        # The first message is read before a refusal: refusing first raced the viewer's own first write, which then
        # failed with gRPC's "Internal error from Core" instead of the refusal. Whatever that message holds, or if
        # none comes, a peer that may not view is refused before the message is looked at: it learns nothing more.
        first: dpb.ViewerMessage | None = None
        with contextlib.suppress(TimeoutError, StopAsyncIteration):
            first = await asyncio.wait_for(anext(request_iterator), START_TIMEOUT_S)
        try:
            self.feature.may_ask(peer)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        if first is None:
            await abort_with(context, DisplayError("the viewer did not say what it wants to view"))
        assert first is not None
        if first.WhichOneof("kind") != "start":
            await abort_with(context, DisplayError("a viewing session must begin with a start message"))
        try:
            async for message in self.feature.serve(peer, first.start, request_iterator):
                yield message
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def Locate(self, request: pb.PeerRef, context: grpc.aio.ServicerContext) -> dpb.PeerLocation:  # noqa: N802
        ctx = self.feature.ctx
        await require_self(ctx, context)
        try:
            peer = ctx.trust.find(request.peer)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        state = next((s for s in ctx.registry.peers() if s.peer.fingerprint == peer.fingerprint), None)
        return dpb.PeerLocation(
            id=peer.node_id,
            name=peer.name,
            address=state.address if state is not None else "",
            cert_pem=peer.cert_pem,
            online=bool(state and state.online),
            pins_keys=peer.pins_keys,
        )
