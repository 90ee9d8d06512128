"""The clipboard feature: watches this machine's clipboard, pushes each new copy to the peers switched on, and
writes the copies peers push here.

No echo: every clip carries its origin node, that node's generation counter and a hash of the normalised content.
The hash of what is on the clipboard now (``_current``) is set before a received clip is written, so the change
that the write itself causes reads back as "nothing new"; a clip whose hash is already on the clipboard is not
written at all. Only copies made on this machine are sent, never ones that arrived, so three or more nodes cannot
pass a clip around in a circle.

Per peer, the ``clipboard`` permission is the one switch: this node accepts clips from a peer only if it allows it
the scope, and sends its own copies only to peers it allows too (``noizylab clip on|off PEER``, or the tray).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb
from noizylab_desktop._proto import noizylab_clipboard_pb2_grpc as cpb_grpc
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.config import update_section
from noizylab_desktop.core.errors import ClipboardError, NoizyLabError
from noizylab_desktop.core.events import Event, PeerOnline
from noizylab_desktop.core.feature import Figure, first_message, require_permission, require_self
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.rpc_errors import abort_with, error_from_rpc
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.clipboard import settings as clip_settings
from noizylab_desktop.services.clipboard.backend import ClipboardBackend
from noizylab_desktop.services.clipboard.content import Clip, clip_hash, with_plain_text
from noizylab_desktop.services.clipboard.events import ClipArrived, ClipNotice, ClipPaused
from noizylab_desktop.services.clipboard.headless import headless_backend
from noizylab_desktop.services.clipboard.outbox import Outbox, Outgoing

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

SCOPE = "clipboard"
READY_TIMEOUT_S = 10.0
# ``_current`` while a password manager's copy is on the clipboard: never a content hash (those are 32 bytes).
SECRET = b"secret"
COUNTERS = {
    "copies": "copies made on this machine",
    "sends": "clips delivered to peers",
    "received": "clips peers pushed here",
    "writes": "clips written to this machine's clipboard",
    "skipped_secret": "copies kept here because a password manager marked them",
    "skipped_size": "copies kept here because they exceed max_bytes",
    "skipped_paused": "copies kept here while sync was paused",
    "refused": "clips a peer or this node refused",
}


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


class ClipboardFeature(cpb_grpc.ClipboardServicer):
    """Clipboard sync for one node."""

    name = "clipboard"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.settings = parse_section(clip_settings.ClipboardSettings, ctx.settings.section(clip_settings.SECTION))
        self.backend: ClipboardBackend | None = None
        self.backend_error = ""
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.generation = 0
        self.last_from = ""
        self.last_at = 0.0
        self.last_kinds = ""
        self.last_notice = ""
        self._current: bytes | None = None  # hash of what the clipboard holds now, as far as we know
        self._seen: dict[str, int] = {}  # origin node ID → highest generation applied here
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()  # set once start() has chosen a backend (or found none)
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] = lambda: None
        self.outbox: Outbox | None = None

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        cpb_grpc.add_ClipboardServicer_to_server(self, server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return ("noizylab.grid.v1.Clipboard",)

    async def start(self) -> None:
        self.outbox = Outbox(self.ctx.registry, self._delivered, self._refused)
        self._unlisten = self.ctx.bus.listen(self._on_event)
        self._tasks.append(asyncio.create_task(self._watch(), name="clipboard-watch"))
        try:
            if self.backend is None:
                await self.use_backend(await asyncio.to_thread(headless_backend, self.settings.backend))
        except ClipboardError as exc:
            self.backend_error = exc.message
            logger.warning("clipboard sync is off on this node: %s", exc.message)
        except Exception as exc:  # a broken clipboard must never keep the node from starting
            self.backend_error = f"the clipboard could not be opened ({exc})"
            logger.exception("clipboard sync is off on this node")
        finally:
            self._ready.set()

    async def stop(self) -> None:
        self._unlisten()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.outbox is not None:
            await self.outbox.close()
        if self.backend is not None:
            backend, self.backend = self.backend, None
            backend.close()  # on the loop: the Qt backend must disconnect on Qt's thread; the others are quick

    def figures(self) -> Iterable[Figure]:
        for key, meaning in COUNTERS.items():
            yield Figure(f"noizylab_clipboard_{key}_total", meaning.capitalize(), self.counters[key], "counter")
        yield Figure("noizylab_clipboard_paused", "1 while clipboard sync is paused", float(self.settings.paused))

    # ------------------------------------------------------------------ backends and local copies

    async def use_backend(self, backend: ClipboardBackend) -> None:
        """Watch ``backend`` from now on (the tray hands in its Qt clipboard); what it holds now is not sent."""
        old, self.backend = self.backend, backend
        self.backend_error = ""
        if old is not None:
            old.close()
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
        loop = asyncio.get_running_loop()
        # Not read now: only changes are sent, and another program's clipboard owner may be slow to answer (or
        # never answer), which must not hold up the node's start or the tray's.
        self._current = None

        def changed() -> None:
            loop.call_soon_threadsafe(self._changed.set)

        if not backend.watch(changed):
            self._poll_task = asyncio.create_task(self._poll(), name="clipboard-poll")
            self._tasks.append(self._poll_task)
        logger.info("clipboard sync uses the %s backend", backend.name)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_s)
            self._changed.set()

    async def _watch(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self._local_change()
            except ClipboardError as exc:
                self._notice("unreadable", exc.message)
            except Exception:
                logger.exception("reading the clipboard failed")

    async def _local_change(self) -> None:
        backend = self.backend
        if backend is None:
            return
        if not self._enabled_peers():
            self._current = None  # nobody to send to: the clipboard is not even read
            return
        async with self._lock:
            snapshot = await backend.read()
            if snapshot.secret:
                if self._current == SECRET and self._poll_task is not None:
                    return  # a polled backend reading the same secret again: it was counted once, when it came
                if self._current != SECRET:
                    self._notice("secret", "a password manager's copy stays on this machine")
                self.counters["skipped_secret"] += 1
                self._current = SECRET
                return
            clip = with_plain_text(snapshot.clip)
            if clip.empty:
                return
            digest = await asyncio.to_thread(clip_hash, clip)
            if digest == self._current:
                return  # our own write, or the same content again (line endings or image encoding aside)
            self._current = digest
            self.counters["copies"] += 1
            # Milliseconds since the epoch, kept rising: a restarted node's copies still count as newer.
            self.generation = max(self.generation + 1, int(time.time() * 1000))
            self.last_from, self.last_at, self.last_kinds = (
                self.ctx.settings.name,
                time.time(),
                ", ".join(clip.kinds()),
            )
        if clip.size > self.settings.max_bytes:
            self.counters["skipped_size"] += 1
            self._notice(
                "size",
                f"a {megabytes(clip.size)} copy stays here: over the {megabytes(self.settings.max_bytes)} cap "
                "([clipboard] max_bytes)",
            )
            return
        if self.settings.paused:
            self.counters["skipped_paused"] += 1
            return
        header = cpb.ClipHeader(
            origin_id=self.ctx.identity.node_id,
            generation=self.generation,
            hash=digest,
            text=clip.text,
            html=clip.html,
            png_size=len(clip.png),
            copied_at=time.time(),
        )
        outgoing = Outgoing(header, clip.png)
        assert self.outbox is not None
        for state in self._enabled_peers():
            self.outbox.put(state.peer.fingerprint, outgoing)

    def _enabled_peers(self) -> list[PeerState]:
        return [s for s in self.ctx.registry.peers() if self.ctx.permissions.allowed(s.peer.fingerprint, SCOPE)]

    # ------------------------------------------------------------------ outbox callbacks and events

    def _delivered(self, state: PeerState, reply: cpb.PushReply) -> None:
        self.counters["sends"] += 1
        if not reply.written:
            logger.debug("%s kept its clipboard: %s", state.peer.name, reply.reason)

    def _refused(self, state: PeerState, exc: grpc.aio.AioRpcError) -> None:
        self.counters["refused"] += 1
        reason = error_from_rpc(exc, state.peer.name, refused=ClipboardError, failed=ClipboardError).message
        self._notice("refused", f"{state.peer.name} did not take the clip: {reason}")

    def _notice(self, reason: str, message: str) -> None:
        self.last_notice = message
        logger.info("clipboard: %s", message)
        self.ctx.bus.publish(ClipNotice(reason=reason, message=message))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PeerOnline) and self.outbox is not None:
            for state in self.ctx.registry.peers():
                if state.peer.node_id == event.peer_id:
                    self.outbox.kick(state.peer.fingerprint)

    # ------------------------------------------------------------------ peer-facing RPC

    async def Push(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[cpb.ClipPart], context: grpc.aio.ServicerContext
    ) -> cpb.PushReply:
        first = await first_message(request_iterator)  # before any refusal (core/feature.py says why)
        fp = await require_permission(self.ctx, context, SCOPE)
        peer = self.ctx.trust.get(fp)
        name = peer.name if peer is not None else "this node"
        if first is None or not first.HasField("header"):
            await abort_with(context, ClipboardError("a clip must start with its header"))
        header = first.header
        size = len(header.text.encode()) + len(header.html.encode()) + header.png_size
        if size > self.settings.max_bytes:
            self.counters["refused"] += 1
            self._notice("size", f"refused a {megabytes(size)} clip from {name}: over this node's cap")
            await abort_with(
                context,
                ClipboardError(
                    f"a {megabytes(size)} clip is over {self.ctx.settings.name}'s "
                    f"{megabytes(self.settings.max_bytes)} cap ([clipboard] max_bytes)"
                ),
            )
        png = bytearray()
        async for part in request_iterator:
            png += part.png
            if len(png) > header.png_size:
                await abort_with(context, ClipboardError("the clip's image is longer than its header said"))
        if len(png) != header.png_size:
            await abort_with(context, ClipboardError("the clip's image ended early"))
        self.counters["received"] += 1
        try:
            return await self._apply(header, bytes(png), fp, name)
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def _apply(self, header: cpb.ClipHeader, png: bytes, fp: bytes, name: str) -> cpb.PushReply:
        if self.settings.paused:
            return cpb.PushReply(written=False, reason="paused")
        # The gRPC server is up before the backend is chosen; a peer that pushes at once waits for it.
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except TimeoutError as exc:
            raise ClipboardError(f"{self.ctx.settings.name} is still starting: try again") from exc
        backend = self.backend
        if backend is None:
            raise ClipboardError(f"{self.ctx.settings.name} has no clipboard: {self.backend_error}")
        clip = Clip(text=header.text, html=header.html, png=png)
        digest = await asyncio.to_thread(clip_hash, clip)  # our own hash: a peer's is not trusted for echo checks
        async with self._lock:
            if header.generation <= self._seen.get(header.origin_id, 0):
                return cpb.PushReply(written=False, reason="a newer clip from that node is already here")
            self._seen[header.origin_id] = header.generation
            if digest == self._current:
                return cpb.PushReply(written=False, reason="already on the clipboard")
            self._current = digest  # before the write, so the change it causes is not taken for a new copy
            await backend.write(clip)
            self.counters["writes"] += 1
            self.last_from, self.last_at, self.last_kinds = name, time.time(), ", ".join(clip.kinds())
        peer = self.ctx.trust.get(fp)
        self.ctx.bus.publish(ClipArrived(peer_id=peer.node_id if peer else "", name=name, kinds=self.last_kinds))
        return cpb.PushReply(written=True)

    # ------------------------------------------------------------------ this node's command line and tray

    def status(self) -> cpb.ClipStatus:
        """Switches, peers, the last clip and the counters."""
        assert self.outbox is not None
        peers = [
            cpb.ClipPeer(
                id=s.peer.node_id,
                name=s.peer.name,
                on=self.ctx.permissions.allowed(s.peer.fingerprint, SCOPE),
                online=s.online,
                pending=self.outbox.pending(s.peer.fingerprint),
            )
            for s in self.ctx.registry.peers()
        ]
        return cpb.ClipStatus(
            paused=self.settings.paused,
            backend=self.backend.name if self.backend is not None else f"none ({self.backend_error})",
            max_bytes=self.settings.max_bytes,
            peers=peers,
            last_from=self.last_from,
            last_at=self.last_at,
            last_kinds=self.last_kinds,
            counters=dict(self.counters),
            last_notice=self.last_notice,
        )

    def set_sync(self, ref: str, on: bool) -> None:
        """Switch sync with one peer (by name or ID prefix), or with every paired peer when ``ref`` is empty."""
        peers = [self.ctx.trust.find(ref)] if ref else self.ctx.trust.peers()
        for peer in peers:
            self.ctx.permissions.set(peer.fingerprint, SCOPE, on, peer.node_id)
            if not on and self.outbox is not None:
                self.outbox.drop(peer.fingerprint)

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume sync in both directions; remembered in the config."""
        self.settings = clip_settings.ClipboardSettings(**{**self.settings.to_table(), "paused": paused})
        # Only the switch: the rest of [clipboard] may have been edited in the file (Settings…) since the node read it.
        await asyncio.to_thread(update_section, self.ctx.paths, clip_settings.SECTION, {"paused": paused})
        self.ctx.bus.publish(ClipPaused(paused=paused))

    async def Status(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> cpb.ClipStatus:  # noqa: N802
        await require_self(self.ctx, context)
        return self.status()

    async def SetSync(  # noqa: N802
        self, request: cpb.ClipSyncRequest, context: grpc.aio.ServicerContext
    ) -> cpb.ClipStatus:
        await require_self(self.ctx, context)
        try:
            self.set_sync(request.peer, request.on)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return self.status()

    async def SetPaused(  # noqa: N802
        self, request: cpb.ClipPauseRequest, context: grpc.aio.ServicerContext
    ) -> cpb.ClipStatus:
        await require_self(self.ctx, context)
        await self.set_paused(request.paused)
        return self.status()
