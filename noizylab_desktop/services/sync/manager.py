"""The node's shares and offers: adding, removing, pausing, and building each share's engine and remote side."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop.core.errors import NoizyLabError, PermissionRefusedError, SyncError
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.rpc_errors import error_from_rpc
from noizylab_desktop.core.words import plural
from noizylab_desktop.services.sync.engine import PeerBlockedError, ShareEngine
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.landings import Landings
from noizylab_desktop.services.sync.names import check_rel, resolve_inside
from noizylab_desktop.services.sync.remote import GrpcPeer, PeerRemote, RemoteStore, SshRemote, Target
from noizylab_desktop.services.sync.served import overlap, pinned, real_root
from noizylab_desktop.services.sync.settings import SyncSettings
from noizylab_desktop.services.sync.space import check_free, check_quota
from noizylab_desktop.services.sync.store import Offer, Share, ShareStore
from noizylab_desktop.services.sync.trim import Trimmer

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.core.registry import PeerState

logger = logging.getLogger(__name__)

_SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/?$")


_BLOCKED = {grpc.StatusCode.UNAVAILABLE: "peer offline", grpc.StatusCode.PERMISSION_DENIED: "not allowed"}


def rpc_error(exc: grpc.aio.AioRpcError, peer: str) -> SyncError:
    """A peer's gRPC failure as one line, always a SyncError: the engine catches those and retries later."""
    error = error_from_rpc(
        exc,
        peer,
        unavailable=SyncError(f"{peer} is offline; the share syncs when it is back"),
        deadline=SyncError(f"{peer} did not answer in time"),
        failed=SyncError,
        sent_as=SyncError,
    )
    assert isinstance(error, SyncError)
    return error


class ShareManager:
    """Everything sync keeps per node."""

    def __init__(self, ctx: NodeContext, settings: SyncSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.dir = ctx.paths.state_dir / "sync"
        self.store = ShareStore(self.dir / "shares.sqlite")
        self.engines: dict[str, ShareEngine] = {}
        self.offer_indexes: dict[str, ShareIndex] = {}
        self.landings = Landings()  # what this node's engines land, for the Watch streams of served folders
        self.trimmer = Trimmer()  # freed heap back to the OS once passes and served calls go quiet

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for share in self.store.shares():
            self._start_engine(share)

    async def stop(self) -> None:
        await asyncio.gather(*(e.stop() for e in self.engines.values()))
        for engine in self.engines.values():
            engine.index.close()
        self.engines.clear()
        for index in self.offer_indexes.values():
            index.close()
        self.offer_indexes.clear()
        self.store.close()
        self.trimmer.cancel()

    def _start_engine(self, share: Share) -> ShareEngine:
        index = ShareIndex(self.dir / f"share-{share.id}.sqlite")
        engine = ShareEngine(
            share,
            index,
            lambda: asyncio.ensure_future(self._remote_for(share, index)),
            self.ctx.settings.name,
            self.ctx.bus.publish,
            self._pause,
            notices=None if share.is_ssh else (lambda: self._notices(share)),
            rescan_s=self.settings.rescan_s,
            poll_s=self.settings.poll_s,
            quiet_s=self.settings.quiet_ms / 1000,
            keep_versions_s=self.settings.keep_versions_days * 86400,
            merge_max_bytes=self.settings.merge_max_bytes,
            announce=self.landings.landed,
            after_pass=self.trimmer.soon,
        )
        self.engines[share.id] = engine
        engine.start()
        return engine

    async def peer_moved(self, old: bytes, new: bytes) -> None:
        """A peer rotated its identity key: the shares it is served here and this node's shares with it follow it at
        once (not only at the next start), and an engine syncing with it starts again under its new ID: a transfer
        cut short by the peer's restart picks up again, with no "not paired" or "another peer" in between."""
        self.store.move_peer(old, new)
        was = format_id(old)
        for share in self.store.shares():
            engine = self.engines.get(share.id)
            if engine is None or engine.share.peer != was:
                continue
            await engine.stop()
            engine.index.close()
            self._start_engine(share)
            logger.info("share %s follows %s to its new key", share.local, share.peer_name)

    def _pause(self, share: Share, reason: str) -> Share:
        logger.warning("share %s paused: %s", share.local, reason)
        return self.store.set_paused(share, True, reason)

    # ------------------------------------------------------------------ the other side

    def _peer_state(self, share: Share) -> PeerState:
        for state in self.ctx.registry.peers():
            if state.peer.node_id == share.peer:
                return state
        raise PeerBlockedError(
            "not paired", f"{share.peer_name} is no longer paired: remove the share with `noizylab share remove`"
        )

    def _stub(self, share: Share) -> spb_grpc.SyncStub:
        return spb_grpc.SyncStub(self.ctx.registry.channel(self._peer_state(share)))

    async def _offer(self, share: Share) -> spb.OfferReply:
        try:
            reply = await self._stub(share).Offer(spb.OfferRequest(share_id=share.id, remote=share.remote), timeout=10)
        except grpc.aio.AioRpcError as exc:
            # The share's state says which of these holds (``share list``, the tray), and ``sync wait`` stops on it.
            blocked = _BLOCKED.get(exc.code())
            error = rpc_error(exc, share.peer_name)
            raise (PeerBlockedError(blocked, error.message) if blocked else error) from exc
        assert isinstance(reply, spb.OfferReply)
        return reply

    async def _remote_for(self, share: Share, index: ShareIndex) -> RemoteStore:
        key = self.ctx.identity.ssh_private_pem
        if share.is_ssh:
            m = _SSH_URL.match(share.peer)
            assert m is not None
            target = Target(
                m["host"].strip("[]"),
                int(m["port"] or 22),
                m["user"] or "",
                share.remote,
                share.host_key,
                m["host"].strip("[]"),
                probe_os=True,
            )
            return SshRemote(target, key, index)
        state = self._peer_state(share)
        reply = await self._offer(share)
        host = state.address.rsplit(":", 1)[0].strip("[]")
        target = Target(
            host,
            reply.sftp_port,
            self.ctx.identity.node_id,
            reply.sftp_root,
            state.peer.ssh_key,
            share.peer_name,
            reply.os or "linux",
        )
        return PeerRemote(target, key, index, self._calls(share))

    def _calls(self, share: Share) -> GrpcPeer:
        """The peer's Sync calls for ``share``, each on the peer's current channel."""
        return GrpcPeer(lambda: self._stub(share), share.id, lambda exc: rpc_error(exc, share.peer_name))

    def _notices(self, share: Share) -> AsyncIterator[object]:
        return self._calls(share).notices()

    # ------------------------------------------------------------------ commands

    def find(self, ref: str) -> Share:
        """A share by ID prefix or local folder; a one-line error otherwise."""
        ref_path = str(Path(ref).expanduser().resolve()) if not re.fullmatch(r"[0-9a-f]{1,12}", ref) else ""
        found = [s for s in self.store.shares() if s.id.startswith(ref) or s.local == ref_path]
        if len(found) != 1:
            what = "no share" if not found else "several shares"
            raise SyncError(f"{what} match {ref!r}: see `noizylab share list`")
        return found[0]

    async def add(self, local: str, peer: str, remote: str, host_key: str) -> Share:
        root = Path(local).expanduser()
        if not root.is_absolute():
            raise SyncError(f"give the folder as an absolute path, not {local!r}")
        root = root.resolve()
        if not root.is_dir():
            raise SyncError(f"{root} is not a folder: create it first")
        for other in self.store.shares():
            o = Path(other.local)
            if root == o or o in root.parents or root in o.parents:
                raise SyncError(f"{root} overlaps the share {other.local}: shares cannot nest")
        share_id = secrets.token_hex(6)
        if peer.startswith("ssh://"):
            m = _SSH_URL.match(peer)
            if m is None:
                raise SyncError(f"cannot read {peer!r}: write ssh://user@host[:port]")
            if not remote.startswith("/"):
                raise SyncError("an ssh:// share needs --remote with an absolute folder on that server")
            share = Share(share_id, str(root), peer, m["host"], remote, host_key)
        else:
            trusted = self.ctx.trust.find(peer)
            remote = remote or root.name
            try:
                check_rel(remote)
            except NoizyLabError as exc:
                raise SyncError(
                    f"--remote must be a folder inside {trusted.name}'s sync folder: {exc.message}"
                ) from exc
            share = Share(share_id, str(root), trusted.node_id, trusted.name, remote)
            await self._offer(share)
        self.store.put(share)
        self._start_engine(share)
        return share

    async def remove(self, ref: str) -> Share:
        share = self.find(ref)
        engine = self.engines.pop(share.id, None)
        if engine is not None:
            await engine.stop()
            engine.index.close()
        self.store.remove(share.id)
        (self.dir / f"share-{share.id}.sqlite").unlink(missing_ok=True)
        return share

    def set_paused(self, ref: str, paused: bool, allow_deletes: bool) -> Share:
        share = self.store.set_paused(self.find(ref), paused, "paused by you" if paused else "")
        engine = self.engines.get(share.id)
        if engine is not None:
            engine.set_share(share, allow_deletes)
            engine.request()
        return share

    async def wait_idle(self, timeout_s: float, unresolved: Callable[[], dict[str, int]]) -> None:
        """Return once every running share is in sync with no conflict open; a one-line ``SyncError`` as soon as one
        cannot get there by waiting (its peer is offline, refuses, or is no longer paired; a conflict is open), or
        after ``timeout_s``. ``unresolved`` gives the open conflicts by share ID."""
        waits = [e.wait_settled(e.request()) for e in self.engines.values() if not e.share.paused]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=timeout_s)
        except TimeoutError:
            busy = [e for e in self.engines.values() if e.state != "idle" and not e.share.paused]
            detail = "; ".join(f"{e.share.local}: {e.message}" for e in busy[:3]) or "still syncing"
            raise SyncError(f"not in sync after {timeout_s:g} s ({detail})") from None
        running = [e for e in self.engines.values() if not e.share.paused]
        blocked = [e for e in running if e.blocked]
        if blocked:
            e = blocked[0]
            raise SyncError(f"not in sync: {e.share.local} ↔ {e.share.peer_name}: {e.blocked} ({e.message})")
        open_ = {e.share.local: n for e in running if (n := unresolved().get(e.share.id, 0))}
        if open_:
            local, n = next(iter(open_.items()))
            raise SyncError(
                f"not in sync: {local} has {plural(n, 'conflict')} to resolve: see `noizylab sync conflicts`"
            )

    # ------------------------------------------------------------------ serving a peer's share

    def accept_offer(self, fp: bytes, share_id: str, remote: str) -> Offer:
        if not re.fullmatch(r"[0-9a-f]{12}", share_id):
            raise SyncError(f"share ID {share_id!r} is not valid")
        folder = self.settings.folder
        try:
            rel = check_rel(remote)
            folder.mkdir(parents=True, exist_ok=True)
            root = resolve_inside(folder, rel)  # before anything is made: a link on the way must not lead out
            root.mkdir(parents=True, exist_ok=True)
            real = real_root(folder, root)  # again, now that it exists
        except NoizyLabError as exc:
            raise SyncError(f"the folder must be inside {self.ctx.settings.name}'s sync folder: {exc.message}") from exc
        except OSError as exc:  # a name too long, a file where a folder should be
            raise SyncError(
                f"cannot make the folder {remote!r} in {self.ctx.settings.name}'s sync folder: {exc.strerror or exc}"
            ) from exc
        for offer in self.store.offers():
            if offer.share_id == share_id and offer.peer_fp != fp:
                raise PermissionRefusedError(f"share ID {share_id} belongs to another peer")
        for offer in self.store.offers():
            # A share belongs to the peer that made it: no other peer may be served its folder, or one around it.
            if offer.peer_fp != fp and overlap(real, os.path.realpath(offer.root)):
                raise PermissionRefusedError(
                    f"{remote} is (or holds, or lies in) a folder that another peer's share uses on "
                    f"{self.ctx.settings.name}: pick another --remote"
                )
        offer = Offer(share_id, fp, Path(real))
        self.store.put_offer(offer)
        return offer

    def offer_for(self, fp: bytes, share_id: str) -> Offer:
        for offer in self.store.offers(fp):
            if offer.share_id == share_id:
                return offer
        raise SyncError(f"{self.ctx.settings.name} serves no share {share_id} to you: add the share again")

    @contextmanager
    def serve(self, fp: bytes, share_id: str) -> Iterator[Path]:
        """The root of the peer's offer ``share_id``, checked now and pinned for the ``with`` block (``served.py``)."""
        with pinned(self.settings.folder, self.offer_for(fp, share_id).root) as root:
            yield root

    def checked_root(self, fp: bytes, share_id: str) -> Path:
        """The real path of the peer's offer ``share_id``, checked now (for a watch: inotify keeps the folder)."""
        return Path(real_root(self.settings.folder, self.offer_for(fp, share_id).root))

    def room(self, root: Path, share_id: str, files: list[tuple[str, int]]) -> None:
        """``NoRoomError`` unless ``files`` (path, announced size) fit on the disk and in the share's quota."""
        total = sum(size for _, size in files)
        what = files[0][0] if len(files) == 1 else f"{len(files)} files"
        check_free(root, total, what)
        if self.settings.quota_bytes:
            used = self.offer_index(share_id).local_bytes(without=[p for p, _ in files])
            check_quota(total, used, self.settings.quota_bytes, what)

    def offer_index(self, share_id: str) -> ShareIndex:
        if share_id not in self.offer_indexes:
            self.offer_indexes[share_id] = ShareIndex(self.dir / f"offer-{share_id}.sqlite")
        return self.offer_indexes[share_id]

    def roots_for(self, fp: bytes) -> dict[str, Path]:
        """The peer's offers by share ID, as real paths checked now; one that leads out of the sync folder is left
        out."""
        roots = {}
        for offer in self.store.offers(fp):
            try:
                roots[offer.share_id] = Path(real_root(self.settings.folder, offer.root))
            except NoizyLabError as exc:
                logger.warning("not serving share %s over SFTP: %s", offer.share_id, exc.message)
        return roots

    def key_owner(self, key: str) -> bytes | None:
        """The fingerprint of the paired peer that holds SSH key ``key`` and may sync, else None."""
        for peer in self.ctx.trust.peers():
            if " ".join(peer.ssh_key.split()[:2]) == key and self.ctx.permissions.allowed(peer.fingerprint, "sync"):
                return peer.fingerprint
        return None

    def may_sync(self, fp: bytes) -> bool:
        """Whether ``fp`` is a paired peer allowed ``sync`` now (asked again by every SFTP operation)."""
        return self.ctx.trust.get(fp) is not None and self.ctx.permissions.allowed(fp, "sync")
