"""The sync feature: its gRPC service (peer-facing index, hash and change notices; own-node share management),
the embedded SFTP server, and the shares' engines, under the node's lifecycle."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop.core.config import load_settings
from noizylab_desktop.core.errors import MergeError, NoizyLabError, SyncError
from noizylab_desktop.core.events import Event, PeerKeyRotated
from noizylab_desktop.core.feature import Figure, first_message, require_permission, require_self
from noizylab_desktop.core.nodeid import parse_id
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.core.words import plural
from noizylab_desktop.services.sync.blocks import hash_file
from noizylab_desktop.services.sync.engine import ShareEngine
from noizylab_desktop.services.sync.localfs import read_files, write_files
from noizylab_desktop.services.sync.manager import ShareManager
from noizylab_desktop.services.sync.names import resolve_inside, this_os
from noizylab_desktop.services.sync.receive import SENT_HASH, FileHeader, receive
from noizylab_desktop.services.sync.resolve import Conflict, Resolver
from noizylab_desktop.services.sync.scanner import scan
from noizylab_desktop.services.sync.sending import file_chunks
from noizylab_desktop.services.sync.settings import SyncSettings
from noizylab_desktop.services.sync.sftp_server import SftpServer
from noizylab_desktop.services.sync.store import Offer, Share
from noizylab_desktop.services.sync.watcher import Watcher

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

BATCH = 2000
GET_BYTES = 2 * 1024 * 1024  # per GetFiles reply (gRPC messages are capped at 4 MiB)


def share_info(share: Share, engine: ShareEngine | None, conflicts: int = 0, peer_gone: str = "") -> spb.ShareInfo:
    """One of this node's shares as ``share list`` and the tray show it: its real state, not only its engine's
    last pass (``peer_gone``: "peer offline" or "not paired" when the registry knows so; ``conflicts``: open ones)."""
    info = spb.ShareInfo(id=share.id, local=share.local, peer=share.peer_name, remote=share.remote)
    if share.paused:
        info.state, info.message = "paused", share.reason or "paused"
    if engine is not None:
        if not share.paused:
            info.state, info.message = engine_state(share, engine, conflicts, peer_gone)
        info.files, info.bytes, info.last_sync = engine.files, engine.bytes, engine.last_sync
        info.conflicts, info.pending = conflicts, engine.pending
        info.transfer_done, info.transfer_total = engine.progress.done, engine.progress.total
        info.recent.extend(list(engine.recent)[:10])
    return info


def engine_state(share: Share, engine: ShareEngine, conflicts: int, peer_gone: str) -> tuple[str, str]:
    """A running share's state and message (see ``share_info``)."""
    state, message = engine.state, engine.message
    if state == "paused":  # resumed: the engine has not started its next pass yet
        return "waiting for peer", "resuming"
    if engine.blocked and state in ("error", "waiting", "syncing"):
        return engine.blocked, message
    if peer_gone and state in ("idle", "waiting"):
        why = "is offline" if peer_gone == "peer offline" else "is no longer paired"
        return peer_gone, f"{share.peer_name} {why}; the share syncs when it is back"
    if state == "waiting":
        return "waiting for peer", message
    if state == "idle" and conflicts:
        return "conflicts", f"{plural(conflicts, 'conflict')} to resolve: see `noizylab sync conflicts`"
    return state, message


def offer_info(offer: Offer, peer: str, state: str, message: str) -> spb.ShareInfo:
    """A peer's share that this node serves, as ``share list`` shows it on this side."""
    return spb.ShareInfo(id=offer.share_id, local=str(offer.root), peer=peer, state=state, message=message, served=True)


def conflict_info(c: Conflict) -> spb.ConflictInfo:
    r = c.record
    return spb.ConflictInfo(
        id=r.id,
        share_id=c.share_id,
        local=c.local,
        peer=c.peer,
        path=r.path,
        copy=r.copy,
        at=r.at,
        file_from=r.file_from,
        copy_from=r.copy_from,
        has_ancestor=r.base is not None,
    )


class SyncApi(spb_grpc.SyncServicer):
    def __init__(self, feature: SyncFeature) -> None:
        self.f = feature

    @property
    def m(self) -> ShareManager:
        return self.f.manager

    # ------------------------------------------------------------------ peer-facing

    async def Offer(self, request: spb.OfferRequest, context: grpc.aio.ServicerContext) -> spb.OfferReply:  # noqa: N802
        fp = await require_permission(self.f.ctx, context, "sync")
        try:
            offer = self.m.accept_offer(fp, request.share_id, request.remote)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return spb.OfferReply(sftp_port=self.f.sftp.port, sftp_root="/" + offer.share_id, os=this_os())

    async def Index(  # noqa: N802
        self, request: spb.ShareRef, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[spb.IndexBatch]:
        fp = await require_permission(self.f.ctx, context, "sync")
        try:
            with self.m.serve(fp, request.share_id) as root:
                result = await asyncio.to_thread(scan, root, self.m.offer_index(request.share_id))
        except NoizyLabError as exc:
            await abort_with(context, exc)
        entries = [
            spb.FileEntry(path=e.path, size=e.size, mtime_ns=e.mtime_ns, hash=e.hash, blocks=e.blocks)
            for e in result.entries.values()
        ]
        for start in range(0, max(len(entries), 1), BATCH):
            yield spb.IndexBatch(entries=entries[start : start + BATCH], last=start + BATCH >= len(entries))
        self.m.trimmer.soon()

    async def Hash(self, request: spb.HashRequest, context: grpc.aio.ServicerContext) -> spb.FileEntry:  # noqa: N802
        fp = await require_permission(self.f.ctx, context, "sync")
        try:
            with self.m.serve(fp, request.share_id) as root:
                hashed = await asyncio.to_thread(hash_file, resolve_inside(root, request.path))
        except NoizyLabError as exc:
            await abort_with(context, exc)
        except OSError as exc:
            await abort_with(context, SyncError(f"cannot read {request.path}: {exc.strerror or exc}"))
        return spb.FileEntry(path=request.path, size=hashed.size, hash=hashed.digest, blocks=hashed.blocks)

    async def Watch(self, request: spb.ShareRef, context: grpc.aio.ServicerContext) -> AsyncIterator[spb.Notice]:  # noqa: N802
        fp = await require_permission(self.f.ctx, context, "sync")
        try:
            root = self.m.checked_root(fp, request.share_id)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        queue: asyncio.Queue[set[str]] = asyncio.Queue(maxsize=64)

        def batch(paths: set[str]) -> None:
            if not queue.full():
                queue.put_nowait(paths)

        # The peer's own writes landing here are not news to it: this watcher drops them as inotify reports them,
        # and hears of what this node's own engines land here from the manager instead (landings.py).
        watcher = Watcher(root, asyncio.get_running_loop(), batch, quiet_s=0.05, cap_s=0.5, drop_landings=True)
        await asyncio.to_thread(watcher.start)
        unsubscribe = self.m.landings.subscribe(str(root), watcher.saw_many)
        try:
            yield spb.Notice()  # tells the client the watch is live
            while True:
                paths = await queue.get()
                yield spb.Notice(paths=sorted(paths)[:1000])
        finally:
            unsubscribe()
            await asyncio.to_thread(watcher.stop)

    async def PutFiles(self, request: spb.PutRequest, context: grpc.aio.ServicerContext) -> spb.PutReply:  # noqa: N802
        fp = await require_permission(self.f.ctx, context, "sync")
        files = [(f.path, f.data, f.hash, f.mtime_ns) for f in request.files]
        try:
            with self.m.serve(fp, request.share_id) as root:
                # The index only once the share is known to be this peer's: a made-up ID opens nothing here.
                index = self.m.offer_index(request.share_id)
                self.m.room(root, request.share_id, [(p, len(d)) for p, d, _, _ in files])
                failed = await asyncio.to_thread(write_files, root, files, index)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        self.m.trimmer.soon()
        return spb.PutReply(failed=failed)

    async def PutStream(  # noqa: N802
        self, request_iterator: AsyncIterator[spb.FileChunk], context: grpc.aio.ServicerContext
    ) -> spb.FileEntry:
        first = await first_message(request_iterator)  # before any refusal (core/feature.py says why)
        fp = await require_permission(self.f.ctx, context, "sync")
        if first is None:
            await abort_with(context, SyncError("an empty file stream"))
        assert first is not None
        header = FileHeader(first.path, first.size, first.hash, first.mtime_ns, first.keep_version)

        async def chunks() -> AsyncIterator[tuple[int, bytes]]:
            if first.data:
                yield first.offset, first.data
            async for chunk in request_iterator:
                # A hash after the header: the sender hashed while it read, and this is its last message.
                yield (SENT_HASH, chunk.hash) if chunk.hash else (chunk.offset, chunk.data)

        try:
            with self.m.serve(fp, first.share_id) as root:
                self.m.room(root, first.share_id, [(header.path, header.size)])
                got = await receive(root, header, chunks(), self.m.offer_index(first.share_id))
        except NoizyLabError as exc:
            await abort_with(context, exc)
        except OSError as exc:
            await abort_with(context, SyncError(f"cannot write {first.path}: {exc.strerror or exc}"))
        return spb.FileEntry(path=first.path, size=got.size, hash=got.digest, blocks=got.blocks)

    async def GetStream(  # noqa: N802
        self, request: spb.GetStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[spb.FileChunk]:
        fp = await require_permission(self.f.ctx, context, "sync")
        try:
            with self.m.serve(fp, request.share_id) as root:
                path = resolve_inside(root, request.path)
                # The puller checks the hash it planned with, so a file changing here meanwhile is caught there.
                async for offset, data in file_chunks(path, request.offset):
                    yield spb.FileChunk(offset=offset, data=data)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        except OSError as exc:
            await abort_with(context, SyncError(f"cannot read {request.path}: {exc.strerror or exc}"))

    async def GetFiles(  # noqa: N802
        self, request: spb.GetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[spb.GetReply]:
        fp = await require_permission(self.f.ctx, context, "sync")
        try:
            with self.m.serve(fp, request.share_id) as root:
                groups = read_files(root, list(request.paths), GET_BYTES)
                # Each group is read and hashed in a worker thread while the previous one travels.
                while (group := await asyncio.to_thread(next, groups, None)) is not None:
                    files, failed = group
                    yield spb.GetReply(
                        files=[spb.SmallFile(path=p, data=d, hash=h, mtime_ns=m) for p, d, h, m in files],
                        failed=failed,
                    )
        except NoizyLabError as exc:
            await abort_with(context, exc)

    # ------------------------------------------------------------------ own node

    async def AddShare(self, request: spb.AddShareRequest, context: grpc.aio.ServicerContext) -> spb.ShareInfo:  # noqa: N802
        await require_self(self.f.ctx, context)
        try:
            share = await self.m.add(request.local, request.peer, request.remote, request.host_key)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return self.f.info_of(share)

    async def RemoveShare(self, request: spb.ShareRef, context: grpc.aio.ServicerContext) -> spb.ShareInfo:  # noqa: N802
        await require_self(self.f.ctx, context)
        try:
            share = await self.m.remove(request.share_id)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return share_info(share, None)

    async def SetPaused(self, request: spb.PauseRequest, context: grpc.aio.ServicerContext) -> spb.ShareInfo:  # noqa: N802
        await require_self(self.f.ctx, context)
        try:
            share = self.m.set_paused(request.share, request.paused, request.allow_deletes)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return self.f.info_of(share)

    async def ListShares(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> spb.ShareList:  # noqa: N802
        await require_self(self.f.ctx, context)
        return self.f.share_list()

    async def WaitIdle(self, request: spb.WaitRequest, context: grpc.aio.ServicerContext) -> spb.ShareList:  # noqa: N802
        await require_self(self.f.ctx, context)
        try:
            await self.m.wait_idle(request.timeout_s or 60.0, self.f.unresolved)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return self.f.share_list()

    async def ListConflicts(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> spb.ConflictList:  # noqa: N802
        await require_self(self.f.ctx, context)
        conflicts = await asyncio.to_thread(self.f.resolver.conflicts)
        return spb.ConflictList(conflicts=[conflict_info(c) for c in conflicts])

    async def ProposeMerge(  # noqa: N802
        self, request: spb.MergeRequest, context: grpc.aio.ServicerContext
    ) -> spb.MergeProposal:
        await require_self(self.f.ctx, context)
        try:
            p = await self.f.resolver.propose(request.conflict, request.ai)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return spb.MergeProposal(
            conflict=conflict_info(p.conflict),
            text=p.text,
            diff_file=p.diff_file,
            diff_copy=p.diff_copy,
            diff_versions=p.diff_versions,
            advisor_on=p.advisor_on,
        )

    async def ResolveConflict(  # noqa: N802
        self, request: spb.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> spb.ConflictInfo:
        await require_self(self.f.ctx, context)
        try:
            if request.keep not in ("proposal", "mine", "theirs"):
                raise MergeError(f"keep must be proposal, mine or theirs, not {request.keep!r}")
            conflict = await self.f.resolver.resolve(request.conflict, request.keep)  # type: ignore[arg-type]
        except NoizyLabError as exc:
            await abort_with(context, exc)
        return conflict_info(conflict)


class SyncFeature:
    """Folder sync on this node."""

    name = "sync"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.settings = parse_section(SyncSettings, ctx.settings.section("sync"))
        self.manager = ShareManager(ctx, self.settings)
        self.resolver = Resolver(self.manager.engines, ctx.settings.name, lambda: load_settings(ctx.paths))
        self.sftp = SftpServer(ctx.identity.ssh_private_pem, self.manager, ctx.sessions)
        self.started_at = time.time()
        self._unlisten: Callable[[], None] = lambda: None
        self._moves: set[asyncio.Future[None]] = set()  # shares following a peer's key rotation

    def add_to_server(self, server: grpc.aio.Server) -> None:
        spb_grpc.add_SyncServicer_to_server(SyncApi(self), server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return ("noizylab.grid.v1.Sync",)

    async def start(self) -> None:
        port = await self.sftp.start(self.ctx.settings.grpc_host, self.ctx.settings.ports.sftp)
        self.ctx.publish_port("sftp", port)
        self.manager.start()
        self._unlisten = self.ctx.bus.listen(self._on_event)

    async def stop(self) -> None:
        self._unlisten()
        for task in list(self._moves):
            await task
        await self.manager.stop()
        await self.sftp.stop()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PeerKeyRotated) and event.key == "identity":
            task = asyncio.ensure_future(self.manager.peer_moved(parse_id(event.was), parse_id(event.peer_id)))
            self._moves.add(task)
            task.add_done_callback(self._moves.discard)

    def unresolved(self) -> dict[str, int]:
        """Open conflicts by share ID."""
        return dict(collections.Counter(c.share_id for c in self.resolver.conflicts()))

    def _peer_gone(self, share: Share) -> str:
        if share.is_ssh:
            return ""
        state = next((p for p in self.ctx.registry.peers() if p.peer.node_id == share.peer), None)
        return "not paired" if state is None else ("" if state.online else "peer offline")

    def info_of(self, share: Share, unresolved: dict[str, int] | None = None) -> spb.ShareInfo:
        """One of this node's shares with its real state."""
        conflicts = (self.unresolved() if unresolved is None else unresolved).get(share.id, 0)
        return share_info(share, self.manager.engines.get(share.id), conflicts, self._peer_gone(share))

    def served(self) -> list[spb.ShareInfo]:
        """The peers' shares this node serves, each with whether its peer can sync it now."""
        out = []
        for offer in self.manager.store.offers():
            peer = self.ctx.trust.get(offer.peer_fp)
            state = next((p for p in self.ctx.registry.peers() if p.peer.fingerprint == offer.peer_fp), None)
            if peer is None or state is None:
                continue  # an unpaired peer's share is served no more: nothing to show
            name = peer.name
            if not self.ctx.permissions.allowed(offer.peer_fp, "sync"):
                row = offer_info(offer, name, "not allowed", f"allow it with `noizylab allow {name} sync`")
            elif not state.online:
                row = offer_info(offer, name, "peer offline", f"{name}'s share syncs when {name} is back")
            else:
                row = offer_info(offer, name, "served", f"{name}'s share, kept in this folder")
            out.append(row)
        return out

    def share_list(self) -> spb.ShareList:
        unresolved = self.unresolved()
        own = [self.info_of(s, unresolved) for s in self.manager.store.shares()]
        return spb.ShareList(shares=[*own, *self.served()])

    def figures(self) -> Iterable[Figure]:
        engines = list(self.manager.engines.values())
        sent = sum(e.remote.bytes_sent for e in engines if e.remote is not None)
        received = sum(e.remote.bytes_received for e in engines if e.remote is not None)
        yield Figure("noizylab_sync_shares", "Shares of this node", len(engines))
        yield Figure("noizylab_sync_files", "Files in this node's shares", sum(e.files for e in engines))
        yield Figure("noizylab_sync_sent_bytes_total", "Bytes sent by sync", sent, "counter")
        yield Figure("noizylab_sync_received_bytes_total", "Bytes received by sync", received, "counter")
        yield Figure(
            "noizylab_sync_conflicts_total", "Conflict copies made", sum(e.conflicts for e in engines), "counter"
        )
        yield Figure(
            "noizylab_sync_merges_total", "Concurrent edits merged three-way", sum(e.merges for e in engines), "counter"
        )
        yield Figure("noizylab_sync_paused_shares", "Shares paused", sum(e.share.paused for e in engines))
        now = time.monotonic()
        lags = [now - e.dirty_since for e in engines if e.dirty_since is not None]
        yield Figure("noizylab_sync_lag_seconds", "Age of the oldest change not yet synced", max(lags, default=0.0))
        yield Figure("noizylab_sync_pending_files", "Changes planned but not yet done", sum(e.pending for e in engines))
