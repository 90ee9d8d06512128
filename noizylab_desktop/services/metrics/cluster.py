"""The cluster view: this node's snapshot plus each peer's, pulled over gRPC; a down peer shows as down.

A peer's figures are kept only while the registry says it is up and its last answer is fresh (at most three pull
periods and 2 s old): a person must never read a dead machine's last numbers as if they were current. How often a
peer is pulled is the caller's choice (each sample while someone looks, every ``peer_interval_s`` otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
from noizylab_desktop.core.registry import PeerState, Registry

logger = logging.getLogger(__name__)

STALE_GRACE_S = 2.0
# Sent with pulls at the full pace: someone looks at the asking node, so the answering one walks its process table
# (the busiest processes, shown on the dashboard) at the full pace too.
WATCHING_KEY = "noizylab-watching"
WATCHING = ((WATCHING_KEY, "1"),)


def sent_watching(metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
    """Whether a pull's metadata says someone looks at the asking node."""
    return any(key == WATCHING_KEY for key, _ in metadata or ())


@dataclass
class _Pulled:
    metrics: mpb.NodeMetrics | None = None
    received_at: float = 0.0
    error: str = ""
    pulling: asyncio.Task[None] | None = None
    asked_at: float = float("-inf")
    period_s: float = 0.0  # the pull period in force when the answer came: it stays fresh for three of them


class PeerPuller:
    """Pulls each online peer's snapshot, at most one call per peer in flight."""

    def __init__(self, registry: Registry, timeout_s: float, tick_s: float) -> None:
        self.registry = registry
        self.timeout_s = timeout_s
        self.tick_s = tick_s
        self._pulled: dict[bytes, _Pulled] = {}

    def poke(self, every_s: float) -> None:
        """Start a pull from every online peer that has none running and was last asked ``every_s`` ago or more."""
        now = time.monotonic()
        for state, entry in self._online():
            # Ticks jitter: a pull due each tick must not be put off to the next for being a millisecond early.
            if entry.pulling is None and now - entry.asked_at >= every_s - self.tick_s / 2:
                self._start(state, entry, every_s, now)

    async def pull_stale(self, older_than_s: float, every_s: float) -> bool:
        """Pull now every online peer whose answer is older than ``older_than_s``; wait for them. True if any came."""
        now = time.monotonic()
        waiting: list[asyncio.Task[None]] = []
        for state, entry in self._online():
            if entry.pulling is None and now - entry.received_at > older_than_s:
                self._start(state, entry, every_s, now)
            if entry.pulling is not None:
                waiting.append(entry.pulling)
        if not waiting:
            return False
        await asyncio.wait(waiting)  # each pull has its own deadline; a caller cancelled leaves them running
        return any(e.received_at > now for _, e in self._online())

    def _online(self) -> list[tuple[PeerState, _Pulled]]:
        found = []
        for state in self.registry.peers():
            entry = self._pulled.setdefault(state.peer.fingerprint, _Pulled())
            if not state.online:
                entry.metrics = None  # a peer that went down must not come back showing old numbers
                continue
            found.append((state, entry))
        return found

    def _start(self, state: PeerState, entry: _Pulled, every_s: float, now: float) -> None:
        entry.asked_at = now
        entry.pulling = asyncio.ensure_future(self._pull(state, entry, every_s))

    async def _pull(self, state: PeerState, entry: _Pulled, every_s: float) -> None:
        stub = mpb_grpc.MetricsStub(self.registry.channel(state))
        try:
            watching = WATCHING if every_s <= self.tick_s else None
            entry.metrics = await stub.Snapshot(pb.Empty(), timeout=self.timeout_s, metadata=watching)
            entry.received_at = time.monotonic()
            entry.period_s = every_s
            entry.error = ""
        except grpc.aio.AioRpcError as exc:
            entry.error = f"{exc.code().name}: {exc.details()}"
            logger.debug("could not pull %s's metrics: %s", state.peer.name, entry.error)
        finally:
            entry.pulling = None

    def view(self, every_s: float) -> list[mpb.ClusterNode]:
        """Every paired peer as it stands now, pulled every ``every_s`` from now on."""
        nodes = []
        now = time.monotonic()
        for state in self.registry.peers():
            node = mpb.ClusterNode(
                id=state.peer.node_id, name=state.peer.name, online=state.online, rtt_seconds=state.rtt_ms / 1000
            )
            entry = self._pulled.get(state.peer.fingerprint)
            if entry is not None:
                node.error = entry.error if state.online else ""
                # Fresh for three periods of the slower pace: the one it came at, or the one in force now (a
                # dashboard just closed must not blank the figures it was showing while the slow pace takes over).
                fresh_s = 3 * max(every_s, entry.period_s) + STALE_GRACE_S
                if state.online and entry.metrics is not None and now - entry.received_at <= fresh_s:
                    node.metrics.CopyFrom(entry.metrics)
            nodes.append(node)
        return nodes

    async def close(self) -> None:
        """Cancel pulls in flight."""
        tasks = [e.pulling for e in self._pulled.values() if e.pulling is not None and not e.pulling.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
