"""An idle grid stays quiet: peers' figures are pulled each sample only while someone looks, and beats are shared.

Two ``Node`` objects on one asyncio loop, paired over real mTLS gRPC on loopback, sampling every 0.2 s so that a
few seconds hold many samples. Waiting is on the nodes' own events (samples taken, calls answered), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
from noizylab_desktop.core.config import Paths, Settings, save_settings
from noizylab_desktop.core.local_client import LocalClient
from noizylab_desktop.node.node import Node
from noizylab_desktop.services.metrics.events import MetricsUpdated
from noizylab_desktop.services.metrics.feature import MetricsFeature

SNAPSHOT = "/noizylab.grid.v1.Metrics/Snapshot"
HEARTBEAT = "/noizylab.grid.v1.Node/Heartbeat"
# A sample every 0.2 s; the slow pace is never due within a test; a look counts for two seconds (10 samples).
QUICK = {"interval_s": 0.2, "peer_interval_s": 3600.0, "watch_s": 2.0}
DEADLINE_S = 20.0


def _node(root: Path, name: str) -> Node:
    paths = Paths.resolve(root / name)
    paths.ensure()
    settings = Settings(name=name, grpc_host="127.0.0.1", advertise=("127.0.0.1",)).with_ports(0, 0, 0)
    settings = settings.with_section("metrics", QUICK)
    save_settings(paths, settings)
    return Node(paths, settings)


def _metrics(node: Node) -> MetricsFeature:
    feature = node.features["metrics"]
    assert isinstance(feature, MetricsFeature)
    return feature


async def _until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    """Check ``condition`` after each event on the loop until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)  # polls a condition with a deadline (yields to the nodes' own work)
    return found


async def _samples(node: Node, count: int) -> None:
    """Return once ``node`` has taken ``count`` more samples."""
    with node.bus.subscribe(MetricsUpdated) as updates:
        for _ in range(count):
            await asyncio.wait_for(updates.get(), DEADLINE_S)


def _seen(node: Node, name: str) -> mpb.NodeMetrics | None:
    """``node``'s current figures of the peer called ``name`` (None while it has none)."""
    found = next((n for n in _metrics(node).cluster().nodes if n.name == name), None)
    return found.metrics if found is not None and found.HasField("metrics") else None


@asynccontextmanager
async def _pair(root: Path) -> AsyncIterator[tuple[Node, Node]]:
    alpha, beta = _node(root, "alpha"), _node(root, "beta")
    await alpha.start()
    await beta.start()
    try:
        code, _ = await alpha.create_invite([])
        waiting = asyncio.ensure_future(alpha.pairing.wait(code, 10))
        await beta.join(code)
        await waiting
        yield alpha, beta
    finally:
        await beta.stop()
        await alpha.stop()


def _get(node: Node, path: str, token: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.bound_ports['http']}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_an_idle_pair_pulls_slowly_until_someone_looks_then_each_sample_and_fresh_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _pair(tmp_path) as (alpha, beta):
            watcher, watched = _metrics(alpha), _metrics(beta)
            first = await _until(lambda: _seen(alpha, "beta"), "alpha's first pull of beta's figures")
            began, beats_before = time.monotonic(), _beats(alpha, beta)

            def served() -> int:
                return beta.guard.handled[SNAPSHOT]  # beta's only peer is alpha: these are alpha's pulls

            await _samples(alpha, 2)  # a pull started by the first sample has ended by now
            before = served()
            await _samples(alpha, 6)
            assert served() == before, "nobody looks: the slow pace pulls nothing within its period"
            assert not watcher.demand.watching() and not watched.peer_demand.watching()

            _, token = await asyncio.to_thread(watcher.tokens.create, "dashboard")
            asked = time.time()
            answer = await asyncio.to_thread(_get, alpha, "/api/v1/metrics?node=beta", token)
            shown_at = answer["metrics"]["at_unix_seconds"]
            assert shown_at > first.at_unix_seconds and shown_at >= asked - 1.0, "the look pulled beta just now"

            before = served()
            await _samples(alpha, 6)
            assert served() - before >= 4, "while someone looks, beta is pulled at each sample"
            assert watched.peer_demand.watching(), "beta knows someone looks at it (its process list keeps pace)"

            await _until(lambda: not watcher.demand.watching(), "the look to end")
            await _samples(alpha, 2)
            before = served()
            await _samples(alpha, 6)
            assert served() - before == 0, "back to the slow pace once nobody looks"
            assert _seen(alpha, "beta") is not None, "the last figures stay shown at the slow pace"

            async with LocalClient(alpha.paths, alpha.settings) as own:  # as `noizylab metrics` asks
                reply = await own.call(mpb_grpc.MetricsStub(own.channel).Cluster, pb.Empty())
            assert isinstance(reply, mpb.ClusterReply) and [n.name for n in reply.nodes] == ["alpha", "beta"]
            assert served() > before and watcher.demand.watching(), "asking for the cluster pulled beta at once"
            assert reply.nodes[1].metrics.at_unix_seconds > shown_at

            # Each node used to beat the other every second; a beat received now stands in for one sent.
            elapsed = time.monotonic() - began
            assert elapsed > 4 and _beats(alpha, beta) - beats_before <= 1.6 * elapsed, "under 2 beats a second"
            assert all(s.online for s in alpha.registry.peers()) and all(s.online for s in beta.registry.peers())

    asyncio.run(scenario())


def _beats(alpha: Node, beta: Node) -> int:
    return alpha.guard.handled[HEARTBEAT] + beta.guard.handled[HEARTBEAT]
