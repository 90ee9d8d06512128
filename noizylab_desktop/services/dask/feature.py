"""The Dask feature: the ``Dask`` gRPC service, the cluster this node schedules, and this node's worker.

- ``Up`` (this node's user, or a peer allowed ``tasks`` that forwards ``dask up --scheduler``) plans the members,
  checks their versions, makes the cluster's CA, starts the scheduler under the supervisor and asks each member to
  ``Join``; ``Down`` ends it and asks the members to ``Leave``; ``Status`` answers for the cluster wherever it runs.
- A member allows ``Join`` only when it allows ``tasks`` for every node of the cluster (the caller, the owner and
  each member the join lists: ``mutual.py``); its worker asks the scheduler's node to ``Issue`` a certificate at each
  (re)start, so an unpaired or removed member cannot come back.
- A member that stops allowing ``tasks`` for another node of its cluster (deny, unpair) stops its worker at once and
  tells the scheduler's node (``Leave``), which rotates the cluster without it; the scheduler's node itself denying
  or unpairing a member rotates the cluster without that member (the owner: stops it).
- ``Here`` (this node's user only) and ``view`` (the tray) say what this node knows of its cluster, from memory.
- Unpairing a member (or the owner) on the scheduler's node rotates the cluster: a new CA, a new scheduler, the
  remaining members re-certified; running work is lost. The CA is rotated the same way before it expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop._proto import noizylab_dask_pb2_grpc as dpb_grpc
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.errors import DaskError, NoizyLabError, PermissionRefusedError
from noizylab_desktop.core.events import Event, PeerUnpaired, PermissionChanged
from noizylab_desktop.core.feature import Figure, require_permission, require_self
from noizylab_desktop.core.nodeid import format_id, parse_id
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.core.transport import caller_fingerprint
from noizylab_desktop.services.dask.cluster import Cluster
from noizylab_desktop.services.dask.member import Member
from noizylab_desktop.services.dask.mutual import lacking, name_of, parse_members, refusal, shown
from noizylab_desktop.services.dask.peers import call_peer
from noizylab_desktop.services.dask.plan import plan
from noizylab_desktop.services.dask.settings import DaskSettings
from noizylab_desktop.services.dask.versions import local_versions, require_installed
from noizylab_desktop.services.dask.view import DaskView, view_of

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

SERVICE = "noizylab.grid.v1.Dask"
CALL_S = 10.0
RENEW_AT = 0.9  # rotate the cluster's certificates at this share of their lifetime


class DaskFeature(dpb_grpc.DaskServicer):
    """Schedules a cluster on this node, runs this node's worker in one, and forwards for this node's user."""

    name = "dask"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.config = parse_section(DaskSettings, ctx.settings.section("dask"))
        self.cluster: Cluster | None = None
        self.member: Member | None = None
        self.home: bytes | None = None  # the peer that schedules the cluster this node's user asked for
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._unlisten = ctx.bus.listen(self._on_event)

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        dpb_grpc.add_DaskServicer_to_server(self, server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return (SERVICE,)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._unlisten()
        for task in list(self._background):
            task.cancel()
        await self._leave()
        await self._down()

    def figures(self) -> Iterable[Figure]:
        cluster = self.cluster
        workers = len(cluster.report.get("workers", [])) if cluster is not None else 0
        yield Figure("noizylab_dask_workers", "Workers in the Dask cluster this node schedules", workers)
        yield Figure("noizylab_dask_worker_running", "Whether this node runs a Dask worker", int(self._worker_up()))
        if cluster is not None:
            for state, count in sorted(cluster.report.get("tasks", {}).items()):
                yield Figure("noizylab_dask_tasks", "Tasks the Dask scheduler holds, by state", count, "gauge",
                             {"state": str(state)})  # fmt: skip

    def _worker_up(self) -> bool:
        return self.member is not None and self.member.worker.pid != 0

    def view(self) -> DaskView:
        """What this node knows of the cluster it schedules or works for, without asking anyone (the tray's rows)."""
        return view_of(self.ctx, self.cluster, self.member, self.home, self._worker_up())

    # ------------------------------------------------------------------ this node's user, or a forwarding peer

    async def Up(self, request: dpb.DaskUpRequest, context: grpc.aio.ServicerContext) -> dpb.DaskStatus:
        fp = await require_permission(self.ctx, context, "tasks")
        try:
            target = request.scheduler.strip()
            if fp == self.ctx.identity.fingerprint and not self._is_self(target):
                return await self._forward_up(request, target)
            if target and not self._is_self(target):
                raise DaskError("a forwarded `dask up` cannot name yet another scheduler")
            async with self._lock:
                return await self._up(request, fp)
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def Down(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> dpb.DaskStatus:
        fp = await require_permission(self.ctx, context, "tasks")
        try:
            async with self._lock:
                if self.cluster is not None:
                    if fp not in (self.ctx.identity.fingerprint, self.cluster.owner):
                        raise PermissionRefusedError("only the node that started the Dask cluster may stop it")
                    cluster_id = self.cluster.id
                    await self._down()
                    return dpb.DaskStatus(running=False, notes=[f"cluster {cluster_id} stopped"])
                home = self._home_for(fp)
                if home is None:
                    raise DaskError("no Dask cluster runs for this node: start one with `noizylab dask up`")
                self.home = None
            reply: dpb.DaskStatus = await call_peer(self.ctx, home, "Down", pb.Empty(), CALL_S)
            return reply
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def Status(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> dpb.DaskStatus:
        fp = caller_fingerprint(context)
        try:
            if self.cluster is not None:
                if not self._may_see(fp):
                    raise PermissionRefusedError("only the Dask cluster's members and owner may see it")
                return self.cluster.status()
            home = self._home_for(fp)
            if home is None:
                await require_permission(self.ctx, context, "tasks")
                return dpb.DaskStatus(running=False)
            reply: dpb.DaskStatus = await call_peer(self.ctx, home, "Status", pb.Empty(), CALL_S)
            return reply
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def Here(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> dpb.DaskHere:
        await require_self(self.ctx, context)
        return self.view().to_proto()

    # ------------------------------------------------------------------ between nodes

    async def Probe(self, request: dpb.DaskProbe, context: grpc.aio.ServicerContext) -> dpb.DaskVersions:
        fp = caller_fingerprint(context)
        assert fp is not None  # the Guard let only a trusted caller through
        found = local_versions()
        found.allows = self._allows(fp, request.owner_id)
        lacks = self._lacking(fp, request.owner_id, request.member_ids)
        if lacks is None:
            found.refusal = "the Dask cluster's member list names a malformed node ID"
        else:
            found.lacks.extend(format_id(x) for x in lacks)
            found.refusal = refusal(self.ctx, lacks)
        return found

    async def Join(self, request: dpb.DaskJoin, context: grpc.aio.ServicerContext) -> pb.Empty:
        fp = await require_permission(self.ctx, context, "tasks")
        try:
            lacks = self._lacking(fp, request.owner_id, request.member_ids)
            if lacks is None:
                raise PermissionRefusedError("the Dask cluster's member list names a malformed node ID")
            if lacks:
                raise PermissionRefusedError(refusal(self.ctx, lacks))
            require_installed()
            peers = self._cluster_nodes(fp, request.owner_id, request.member_ids) or set()
            async with self._lock:
                await self._join(fp, request.cluster_id, frozenset(peers - {self.ctx.identity.fingerprint}))
            return pb.Empty()
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def Leave(self, request: dpb.DaskClusterRef, context: grpc.aio.ServicerContext) -> pb.Empty:
        fp = caller_fingerprint(context)
        cluster = self.cluster
        if (
            cluster is not None
            and fp in cluster.members
            and fp != self.ctx.identity.fingerprint
            and request.cluster_id == cluster.id
        ):
            # A member leaves the cluster scheduled here (it stopped allowing tasks for one of the others).
            reason = shown(request.reason)
            left = f"{cluster.members[fp]} left" + (f" ({reason})" if reason else "")
            logger.info("Dask cluster %s: %s", cluster.id, left)
            self._spawn(self._rotate(fp, left))
            return pb.Empty()
        member = self.member
        if member is not None and fp in (member.home, self.ctx.identity.fingerprint):
            if not request.cluster_id or request.cluster_id == member.cluster_id:
                await self._leave()
        return pb.Empty()

    async def Issue(self, request: dpb.DaskIssueRequest, context: grpc.aio.ServicerContext) -> dpb.DaskIssued:
        fp = caller_fingerprint(context)
        assert fp is not None
        try:
            if self.cluster is not None:
                return self.cluster.issue(fp, request)
            home = self._home_for(fp)
            if home is None:
                raise DaskError(f"no Dask cluster runs on {self.ctx.name}: start one with `noizylab dask up`")
            reply: dpb.DaskIssued = await call_peer(self.ctx, home, "Issue", request, CALL_S)
            return reply
        except NoizyLabError as exc:
            await abort_with(context, exc)

    # ------------------------------------------------------------------ who may do what

    def _is_self(self, ref: str) -> bool:
        return ref in ("", "self", self.ctx.name) or ref.replace("-", "").upper() == self.ctx.identity.node_id.replace(
            "-", ""
        )

    def _allows(self, caller: bytes, owner_id: str) -> bool:
        """Whether this node would run a worker that ``caller`` schedules for ``owner_id``'s user."""
        own = self.ctx.identity.fingerprint
        try:
            owner = parse_id(owner_id) if owner_id else caller
        except (NoizyLabError, ValueError):
            return False
        return all(fp == own or self.ctx.permissions.allowed(fp, "tasks") for fp in (caller, owner))

    def _cluster_nodes(self, caller: bytes, owner_id: str, member_ids: Iterable[str]) -> set[bytes] | None:
        """Every node of a cluster ``caller`` schedules for ``owner_id``: the listed members, and the caller and the
        owner whether listed or not (a list that leaves its sender out does not spare it the check)."""
        members = parse_members([*member_ids, *([owner_id] if owner_id else [])])
        return None if members is None else members | {caller}

    def _lacking(self, caller: bytes, owner_id: str, member_ids: Iterable[str]) -> list[bytes] | None:
        """The nodes of that cluster this node does not allow ``tasks``; None when the list is malformed."""
        nodes = self._cluster_nodes(caller, owner_id, member_ids)
        return None if nodes is None else lacking(self.ctx, nodes)

    def _may_see(self, fp: bytes | None) -> bool:
        cluster = self.cluster
        return (
            cluster is not None
            and fp is not None
            and (fp in (self.ctx.identity.fingerprint, cluster.owner) or fp in cluster.members)
        )

    def _home_for(self, fp: bytes | None) -> bytes | None:
        """Where to forward this node's own user's request (the cluster runs on a peer); None for a peer's."""
        if fp != self.ctx.identity.fingerprint:
            return None
        if self.home is not None:
            return self.home
        if self.member is not None and self.member.home != fp:
            return self.member.home
        return None

    # ------------------------------------------------------------------ the cluster scheduled here

    async def _forward_up(self, request: dpb.DaskUpRequest, target: str) -> dpb.DaskStatus:
        peer = self.ctx.trust.find(target)
        workers = [self.ctx.identity.node_id if self._is_self(w) else self.ctx.trust.find(w).node_id
                   for w in request.workers]  # fmt: skip
        forwarded = dpb.DaskUpRequest(workers=workers, all=request.all)
        reply: dpb.DaskStatus = await call_peer(
            self.ctx, peer.fingerprint, "Up", forwarded, self.config.start_timeout_s * 2 + CALL_S
        )
        self.home = peer.fingerprint
        return reply

    async def _up(self, request: dpb.DaskUpRequest, owner: bytes) -> dpb.DaskStatus:
        if self.cluster is not None:
            raise DaskError(
                f"Dask cluster {self.cluster.id} already runs on {self.ctx.name}: stop it with `noizylab dask down`"
            )
        require_installed()
        members, notes = await self._plan(request, owner)
        cluster = Cluster(self.ctx, self.config, owner, members)
        cluster.notes.extend(notes)
        await self._launch(cluster)
        return cluster.status()

    async def _launch(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ctx.supervisor.start(cluster.scheduler)
        try:
            await asyncio.wait_for(asyncio.shield(cluster.scheduler.ready), self.config.start_timeout_s)
        except (TimeoutError, NoizyLabError) as exc:
            await self._down()
            raise DaskError(f"the Dask scheduler did not start ({exc or 'timed out'}): see `noizylab logs`") from exc
        joined = await asyncio.gather(*(self._ask_to_join(cluster, fp, name) for fp, name in cluster.members.items()))
        for (fp, name), problem in zip(list(cluster.members.items()), joined, strict=True):
            if problem:
                del cluster.members[fp]
                cluster.notes.append(f"{name} left out: {problem}")
        await cluster.settle(self.config.start_timeout_s)
        cluster.renewal = asyncio.ensure_future(self._renew_later(cluster))
        logger.info("Dask cluster %s up at %s with %d members", cluster.id, cluster.address, len(cluster.members))

    async def _ask_to_join(self, cluster: Cluster, fp: bytes, name: str) -> str:
        """Ask a member to start its worker; what went wrong, or ""."""
        try:
            if fp == self.ctx.identity.fingerprint:
                await self._join(fp, cluster.id, frozenset({*cluster.members, cluster.owner} - {fp}))
            else:
                join = dpb.DaskJoin(cluster_id=cluster.id, owner_id=format_id(cluster.owner),
                                    member_ids=[format_id(m) for m in cluster.members])  # fmt: skip
                await call_peer(self.ctx, fp, "Join", join, CALL_S)
        except NoizyLabError as exc:
            return exc.message
        return ""

    async def _plan(self, request: dpb.DaskUpRequest, owner: bytes) -> tuple[dict[bytes, str], list[str]]:
        """The members (fingerprint to name) and who was left out; refuses when a named one cannot take part."""
        own = self.ctx.identity.fingerprint
        strict = bool(request.workers) or request.all
        if request.workers:
            wanted = {}
            for ref in request.workers:
                if self._is_self(ref):
                    wanted[own] = self.ctx.name
                else:
                    peer = self.ctx.trust.find(ref)
                    wanted[peer.fingerprint] = peer.name
        else:
            states = [s for s in self.ctx.registry.peers() if request.all or s.online]
            wanted = {own: self.ctx.name, **{s.peer.fingerprint: s.peer.name for s in states}}
        return await plan(self.ctx, wanted, owner, strict)

    async def _down(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is None:
            return
        if cluster.renewal is not None and cluster.renewal is not asyncio.current_task():
            cluster.renewal.cancel()
        leaving = [fp for fp in cluster.members if fp != self.ctx.identity.fingerprint]
        await asyncio.gather(
            *(call_peer(self.ctx, fp, "Leave", dpb.DaskClusterRef(cluster_id=cluster.id), 3.0) for fp in leaving),
            return_exceptions=True,
        )
        if self.member is not None and self.member.home == self.ctx.identity.fingerprint:
            await self._leave()
        await cluster.scheduler.stop()
        logger.info("Dask cluster %s stopped", cluster.id)

    async def _rotate(self, without: bytes | None, why: str) -> None:
        """A new CA and scheduler for the same cluster, less ``without``: old certificates open nothing any more."""
        async with self._lock:
            old = self.cluster
            if old is None or (without is not None and without not in old.members and without != old.owner):
                return  # ended, or already rotated without it
            await self._down()
            if without == old.owner:
                logger.info("Dask cluster %s stopped: %s", old.id, why)
                return
            members = {fp: name for fp, name in old.members.items() if fp != without}
            cluster = Cluster(self.ctx, self.config, old.owner, members)
            cluster.notes.append(f"certificates rotated: {why}")
            try:
                await self._launch(cluster)
            except NoizyLabError as exc:
                logger.warning("Dask cluster could not restart after rotation: %s", exc.message)

    async def _renew_later(self, cluster: Cluster) -> None:
        await asyncio.sleep(self.config.cert_lifetime_h * 3600 * RENEW_AT)
        self._spawn(self._rotate(None, "the certificates were near the end of their lifetime"))

    # ------------------------------------------------------------------ this node as a member

    async def _join(self, home: bytes, cluster_id: str, peers: frozenset[bytes]) -> None:
        await self._leave()
        member = Member(self.ctx, self.config, home, cluster_id, self._issue, peers)
        self.member = member
        self.ctx.supervisor.start(member.worker)

    async def _leave(self) -> None:
        member, self.member = self.member, None
        if member is not None:
            await member.worker.stop()

    async def _issue(self, home: bytes, request: dpb.DaskIssueRequest) -> dpb.DaskIssued:
        if home == self.ctx.identity.fingerprint:
            if self.cluster is None:
                raise DaskError("the Dask cluster on this node has ended")
            return self.cluster.issue(home, request)
        reply: dpb.DaskIssued = await call_peer(self.ctx, home, "Issue", request, CALL_S)
        return reply

    # ------------------------------------------------------------------ unpairing, deny

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PeerUnpaired):
            fp = parse_id(event.peer_id)
            why = f"{event.name} was unpaired"
            if self.home == fp:
                self.home = None
        elif isinstance(event, PermissionChanged) and event.scope == "tasks" and not event.allowed:
            fp = parse_id(event.peer_id)
            why = f"{self.ctx.name} no longer allows tasks for {name_of(self.ctx, fp)}"
        else:
            return
        own = self.ctx.identity.fingerprint
        member = self.member
        if member is not None and member.home != own and (fp == member.home or fp in member.peers):
            self._spawn(self._quit(member, fp, why))
        cluster = self.cluster
        if cluster is not None and fp != own and (fp in cluster.members or fp == cluster.owner):
            self._spawn(self._rotate(fp, why))

    async def _quit(self, member: Member, fp: bytes, why: str) -> None:
        """Stop this node's worker now (it no longer allows ``fp``, a node of its cluster) and tell the scheduler's
        node, which rotates the cluster without it."""
        if self.member is member:
            await self._leave()
        logger.info("Dask worker left cluster %s: %s", member.cluster_id, why)
        leave = dpb.DaskClusterRef(cluster_id=member.cluster_id, reason=why)
        try:
            await call_peer(self.ctx, member.home, "Leave", leave, CALL_S)
        except NoizyLabError as exc:  # e.g. it was the scheduler's node that was unpaired
            logger.info("could not tell the Dask scheduler's node that this worker left: %s", exc.message)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
