"""The metrics feature: samples this machine once a second, pulls its peers', and serves it all.

Each tick builds an immutable cluster view (this node first, then each paired peer) and a Prometheus scrape; the
gRPC service, the HTTP server's threads and the tray read those views and never the samplers' state. Peers are
pulled each tick only while someone looks (``demand.py``); a look after a quiet spell pulls them at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop import __version__
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
from noizylab_desktop.core.feature import Figure, require_self
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.metrics.api_routes import api_routes
from noizylab_desktop.services.metrics.cluster import PeerPuller, sent_watching
from noizylab_desktop.services.metrics.demand import Demand
from noizylab_desktop.services.metrics.events import MetricsAlert, MetricsUpdated
from noizylab_desktop.services.metrics.gpu import GpuSampler
from noizylab_desktop.services.metrics.history import History
from noizylab_desktop.services.metrics.http_api import HttpApi, Routes, loopback
from noizylab_desktop.services.metrics.prom import PeerHealth, Scrape, registry_for
from noizylab_desktop.services.metrics.rpc import RpcMetrics
from noizylab_desktop.services.metrics.settings import MetricsSettings
from noizylab_desktop.services.metrics.system import SystemSampler
from noizylab_desktop.services.metrics.tokens import TokenStore
from noizylab_desktop.services.metrics.view import AlertTracker

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

SERVICE = "noizylab.grid.v1.Metrics"
# While nobody looks (here or at a peer that pulls us), the busiest processes are looked up this seldom: walking the
# process table is the dearest part of a sample (tens of ms on a desktop with hundreds of processes).
IDLE_PROCESS_INTERVAL_S = 60.0
TOKENS_FILE = "api-tokens.sqlite"


def figure_to_wire(figure: Figure) -> mpb.FigureValue:
    """A feature's figure as it travels to peers."""
    return mpb.FigureValue(
        name=figure.name,
        help=figure.help,
        kind=figure.kind,
        labels=dict(figure.labels),
        value=figure.value,
        buckets=[mpb.Bucket(upper_bound=b, count=c) for b, c in figure.buckets],
        count=figure.count,
    )


class MetricsFeature:
    """Collectors, history, cluster view, ``/metrics`` and the JSON API of one node."""

    name = "metrics"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.settings = parse_section(MetricsSettings, ctx.settings.section("metrics"))
        self.rpc = RpcMetrics()
        self.history = History(int(self.settings.history_s / self.settings.interval_s))
        self.tokens = TokenStore(ctx.paths.state_dir / TOKENS_FILE)
        self.collect_seconds = 0.0
        self.demand = Demand(self.settings.watch_s)
        self.peer_demand = Demand(self.settings.watch_s)  # someone looks at a peer that pulls our figures
        self._cluster = mpb.ClusterReply()
        self._me: mpb.ClusterNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._looks: set[asyncio.Task[None]] = set()
        # Each figure's wire form by the figure object's id, with the object (so the id stays its own): a feature
        # that hands out the same object again (the RPC figures of methods not called since) is not converted again.
        self._wires: dict[int, tuple[Figure, mpb.FigureValue]] = {}
        self._scrape: Scrape | None = None
        self._alerts = AlertTracker()
        self._http: HttpApi | None = None
        self._system: SystemSampler | None = None
        self._gpu: GpuSampler | None = None
        self._puller: PeerPuller | None = None
        self._stopping = False
        # One thread for every sample: NVML handles and psutil's per-thread readings stay with it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-sampler")

    # ------------------------------------------------------------------ Feature protocol

    def add_to_server(self, server: grpc.aio.Server) -> None:
        mpb_grpc.add_MetricsServicer_to_server(MetricsApi(self), server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return [self.rpc]

    def service_names(self) -> Sequence[str]:
        return [SERVICE]

    async def start(self) -> None:
        """Prime the samplers, take the first sample, bind the HTTP port, then sample every interval."""
        loop = self._loop = asyncio.get_running_loop()
        self._system = await loop.run_in_executor(
            self._thread, SystemSampler, self.settings.process_interval_s, self.settings.top_processes
        )
        self._gpu = await loop.run_in_executor(self._thread, GpuSampler)
        self._puller = PeerPuller(self.ctx.registry, self.settings.peer_timeout_s, self.settings.interval_s)
        await self.tick()
        routes = Routes(
            registry_for(self.current_scrape, self.settings.max_series),
            api_routes(self),
            self.tokens,
            self.settings.public_metrics,
        )
        host = self.ctx.settings.http_host
        if not loopback(host):
            # With TOTP on, exposing the API beyond this machine takes a code given to this start (--totp).
            await asyncio.to_thread(self.ctx.totp.require, None, f"the HTTP API on {host}, beyond loopback,")
        self._http = HttpApi(host, self.ctx.settings.ports.http, routes, self.settings.header_timeout_s)
        self.ctx.publish_port("http", self._http.port)
        self.ctx.supervisor.start(self)

    async def stop(self) -> None:
        # The node cancels the sampling task only after every feature stopped: a tick until then must do nothing.
        if self._stopping:
            return  # Node.stop is idempotent (the tray stops its node once when it quits, and again on its way out)
        self._stopping = True
        if self._http is not None:
            http, self._http = self._http, None
            await asyncio.to_thread(http.close)
        for look in list(self._looks):
            look.cancel()
        if self._puller is not None:
            await self._puller.close()
        if self._gpu is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._gpu.close)
        self._thread.shutdown(wait=False)

    def figures(self) -> Iterable[Figure]:
        return self.rpc.figures()

    # ------------------------------------------------------------------ sampling

    async def run(self) -> None:
        """Sample at the interval until cancelled (the supervisor restarts it if a sample crashes)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.settings.interval_s
            now = loop.time()
            if next_at < now:  # fell behind (a suspended laptop): start again from now, do not catch up
                next_at = now + self.settings.interval_s
            await asyncio.sleep(next_at - now)
            await self.tick()

    async def tick(self) -> None:
        """One sample of this node, a fresh cluster view, alerts, and the next scrape."""
        assert self._system is not None and self._gpu is not None and self._puller is not None
        if self._stopping:
            return
        began = time.perf_counter()
        own = await asyncio.get_running_loop().run_in_executor(self._thread, self._sample)
        if self._stopping:
            return
        figures = self._figures()
        own.figures.extend(self._to_wire(figures))
        own.uptime_seconds = self.ctx.uptime_s()
        self.collect_seconds = time.perf_counter() - began
        self.history.add(own.node_id, own)
        self._me = mpb.ClusterNode(id=own.node_id, name=own.name, online=True, self=True, metrics=own)
        self._puller.poke(self.peer_period_s())
        peers = [PeerHealth(s.peer.name, s.online, s.rtt_ms / 1000) for s in self.ctx.registry.peers()]
        self._scrape = Scrape(own.node_id, own.name, __version__, own, figures, peers, self.collect_seconds)
        self._publish_view()

    def peer_period_s(self) -> float:
        """How often peers are pulled now: each sample while someone looks, every ``peer_interval_s`` otherwise."""
        interval = self.settings.interval_s
        return interval if self.demand.watching() else max(interval, self.settings.peer_interval_s)

    def _publish_view(self) -> None:
        """A new cluster view from this node's latest sample and the peers' latest answers; alerts; the event."""
        assert self._me is not None and self._puller is not None
        cluster = mpb.ClusterReply(nodes=[self._me, *self._puller.view(self.peer_period_s())])
        for node in cluster.nodes[1:]:
            if node.HasField("metrics"):
                self.history.add(node.id, node.metrics)
        self._cluster = cluster
        self._raise_alerts(cluster)
        self.ctx.bus.publish(MetricsUpdated())

    # ------------------------------------------------------------------ demand

    async def look(self) -> None:
        """Someone looks at the grid now: pull peers each sample for a while, and any older than a sample at once."""
        if self.demand.look() and self._system is not None:
            self._system.walk_soon()
        if self._stopping or self._puller is None or self._me is None:
            return
        # Older than one interval and a half: the answer of the last tick's pull still counts as current.
        if await self._puller.pull_stale(1.5 * self.settings.interval_s, self.settings.interval_s):
            if not self._stopping:
                self._publish_view()

    def peer_looks(self) -> None:
        """A peer pulled our figures for someone looking there: walk the process table at the full pace for a while."""
        if self.peer_demand.look() and self._system is not None:
            self._system.walk_soon()

    def look_soon(self) -> None:
        """``look`` without waiting for it (the tray's dashboard, which redraws on the ``MetricsUpdated`` it brings)."""
        task = asyncio.ensure_future(self.look())
        self._looks.add(task)
        task.add_done_callback(self._looks.discard)

    def look_from_thread(self) -> None:
        """``look`` from the HTTP server's threads: the answer then shows peers as they are now (or at a deadline)."""
        loop = self._loop
        if loop is None or self._stopping:
            return
        asked = asyncio.run_coroutine_threadsafe(self.look(), loop)
        try:
            asked.result(self.settings.peer_timeout_s + 1)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            asked.cancel()  # the view as it stands is still an answer; a stopping node must not hold a request

    def _to_wire(self, figures: list[Figure]) -> list[mpb.FigureValue]:
        kept: dict[int, tuple[Figure, mpb.FigureValue]] = {}
        wires = []
        for figure in figures:
            known = self._wires.get(id(figure))
            entry = known if known is not None and known[0] is figure else (figure, figure_to_wire(figure))
            kept[id(figure)] = entry
            wires.append(entry[1])
        self._wires = kept
        return wires

    def _figures(self) -> list[Figure]:
        """Every feature's figures; one feature failing leaves the others' (and the sampling) going."""
        return list(self.ctx.figures())

    def _sample(self) -> mpb.NodeMetrics:
        assert self._system is not None and self._gpu is not None
        own = mpb.NodeMetrics(
            node_id=self.ctx.identity.node_id, name=self.ctx.settings.name, at_unix_seconds=time.time()
        )
        watched = self.demand.watching() or self.peer_demand.watching()
        walk_every = self.settings.process_interval_s
        self._system.sample(own, walk_every if watched else max(walk_every, IDLE_PROCESS_INTERVAL_S))
        self._gpu.sample(own)
        return own

    def _raise_alerts(self, cluster: mpb.ClusterReply) -> None:
        for alert in self._alerts.update(cluster, self.settings):
            logger.warning("%s", alert.message)
            self.ctx.bus.publish(MetricsAlert(node=alert.node, what=alert.what, message=alert.message))

    # ------------------------------------------------------------------ views

    def cluster(self) -> mpb.ClusterReply:
        """The latest cluster view (do not modify it: other threads read it too)."""
        return self._cluster

    def current_scrape(self) -> Scrape:
        """The latest scrape, for the Prometheus collector."""
        assert self._scrape is not None, "the first sample is taken before the HTTP server starts"
        return self._scrape


class MetricsApi(mpb_grpc.MetricsServicer):
    """Any paired peer may read this node's figures (the Guard already refused everyone else)."""

    def __init__(self, feature: MetricsFeature) -> None:
        self.feature = feature

    async def Snapshot(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> mpb.NodeMetrics:  # noqa: N802
        if sent_watching(context.invocation_metadata()):
            self.feature.peer_looks()
        cluster = self.feature.cluster()
        if not cluster.nodes:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this node has not sampled its figures yet")
        return cluster.nodes[0].metrics

    async def Cluster(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> mpb.ClusterReply:  # noqa: N802
        await require_self(self.feature.ctx, context)
        await self.feature.look()  # `noizylab metrics` shows each peer as it is now, not as of the last slow pull
        return self.feature.cluster()
