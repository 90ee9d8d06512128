"""The cluster view: this node's snapshot plus each peer's, pulled over gRPC; a down peer shows as down.

A peer's figures are kept only while the registry says it is up and its last answer is fresh: a person must never
read a dead machine's last numbers as if they were current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
from noizylab_desktop.services.registry import PeerState, Registry

logger = logging.getLogger(__name__)


@dataclass
class _Pulled:
    metrics: mpb.NodeMetrics | None = None
    received_at: float = 0.0
    error: str = ""
    pulling: asyncio.Task[None] | None = None


class PeerPuller:
    """Pulls each online peer's snapshot, at most one call per peer in flight."""

    def __init__(self, registry: Registry, timeout_s: float, stale_after_s: float) -> None:
        self.registry = registry
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self._pulled: dict[bytes, _Pulled] = {}

    def poke(self) -> None:
        """Start a pull from every online peer that has none running."""
        for state in self.registry.peers():
            entry = self._pulled.setdefault(state.peer.fingerprint, _Pulled())
            if not state.online:
                entry.metrics = None  # a peer that went down must not come back showing old numbers
                continue
            if entry.pulling is None or entry.pulling.done():
                entry.pulling = asyncio.ensure_future(self._pull(state, entry))

    async def _pull(self, state: PeerState, entry: _Pulled) -> None:
        stub = mpb_grpc.MetricsStub(self.registry.channel(state))
        try:
            entry.metrics = await stub.Snapshot(pb.Empty(), timeout=self.timeout_s)
            entry.received_at = time.monotonic()
            entry.error = ""
        except grpc.aio.AioRpcError as exc:
            entry.error = f"{exc.code().name}: {exc.details()}"
            logger.debug("could not pull %s's metrics: %s", state.peer.name, entry.error)

    def view(self) -> list[mpb.ClusterNode]:
        """Every paired peer as it stands now."""
        nodes = []
        now = time.monotonic()
        for state in self.registry.peers():
            node = mpb.ClusterNode(
                id=state.peer.node_id, name=state.peer.name, online=state.online, rtt_seconds=state.rtt_ms / 1000
            )
            entry = self._pulled.get(state.peer.fingerprint)
            if entry is not None:
                node.error = entry.error if state.online else ""
                if state.online and entry.metrics is not None and now - entry.received_at <= self.stale_after_s:
                    node.metrics.CopyFrom(entry.metrics)
            nodes.append(node)
        return nodes

    async def close(self) -> None:
        """Cancel pulls in flight."""
        tasks = [e.pulling for e in self._pulled.values() if e.pulling is not None and not e.pulling.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
