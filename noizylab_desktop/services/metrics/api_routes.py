"""The JSON API's routes under ``/api/v1/``: nodes, current metrics, an hour of history, tasks and sync figures.

Field names carry their units (``cpu_ratio``, ``memory_used_bytes``, ``at_unix_seconds``). Every route reads the
views the sampler published last, so it runs safely in the HTTP server's threads.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.services.metrics.http_api import BadRequest, Endpoint, JsonRoute, Query
from noizylab_desktop.services.metrics.view import as_json, health

if TYPE_CHECKING:
    from noizylab_desktop.services.metrics.feature import MetricsFeature


def _pick(cluster: mpb.ClusterReply, query: Query) -> mpb.ClusterNode:
    """The node named by ``?node=`` (its ID, the start of its ID, or its name); this node by default."""
    ref = (query.get("node") or [""])[0]
    if not ref:
        return cluster.nodes[0]
    found = [n for n in cluster.nodes if n.name == ref or n.id == ref] or [
        n for n in cluster.nodes if n.id.replace("-", "").startswith(ref.replace("-", "").upper())
    ]
    if len(found) != 1:
        names = ", ".join(n.name for n in cluster.nodes)
        raise BadRequest(f"node={ref!r} matches {len(found)} nodes; known are {names}")
    return found[0]


# The token scope each endpoint needs (``tokens.SCOPES``; ``admin`` holds them all). A route missing here stops the
# node at start, and tests/integration/test_token_scopes.py asks every endpoint with every scope.
SCOPE_OF = {
    "nodes": "metrics",
    "metrics": "metrics",
    "cluster": "metrics",
    "history": "metrics",
    "figures": "metrics",
    "tasks": "tasks",
    "sync": "sync",
}


def api_routes(feature: MetricsFeature) -> dict[str, Endpoint]:
    """The routes, each a function of the query string behind the scope it needs."""

    def node_row(node: mpb.ClusterNode) -> dict[str, Any]:
        return {
            "id": node.id,
            "name": node.name,
            "self": node.self,
            "online": node.online,
            "health": health(node, feature.settings),
            "rtt_seconds": node.rtt_seconds,
            "at_unix_seconds": node.metrics.at_unix_seconds if node.HasField("metrics") else None,
        }

    def nodes(query: Query) -> Any:
        return [node_row(n) for n in feature.cluster().nodes]

    def metrics(query: Query) -> Any:
        node = _pick(feature.cluster(), query)
        return {**node_row(node), "metrics": as_json(node.metrics) if node.HasField("metrics") else None}

    def cluster(query: Query) -> Any:
        return [
            {**node_row(n), "metrics": as_json(n.metrics) if n.HasField("metrics") else None}
            for n in feature.cluster().nodes
        ]

    def history(query: Query) -> Any:
        node = _pick(feature.cluster(), query)
        raw = (query.get("seconds") or [str(feature.settings.history_s)])[0]
        try:
            seconds = float(raw)
        except ValueError:
            raise BadRequest(f"seconds={raw!r} is not a number") from None
        if not 0 < seconds <= feature.settings.history_s:
            raise BadRequest(f"seconds must be above 0 and at most {feature.settings.history_s}, not {raw}")
        points = feature.history.since(node.id, time.time() - seconds)
        return {
            "id": node.id,
            "name": node.name,
            "interval_seconds": feature.settings.interval_s,
            "points": [p.as_dict() for p in points],
        }

    def figures_of(prefix: str) -> JsonRoute:
        def route(query: Query) -> Any:
            node = _pick(feature.cluster(), query)
            figures = node.metrics.figures if node.HasField("metrics") else []
            return {
                "id": node.id,
                "name": node.name,
                "figures": [as_json(f) for f in figures if f.name.startswith(prefix)],
            }

        return route

    def looked(route: JsonRoute) -> JsonRoute:
        # A request is someone looking: peers are pulled at once if their figures are old, then each sample.
        def answer(query: Query) -> Any:
            feature.look_from_thread()
            return route(query)

        return answer

    routes = {
        "nodes": nodes,
        "metrics": metrics,
        "cluster": cluster,
        "history": history,
        "figures": figures_of("noizylab_"),
        "tasks": figures_of("noizylab_tasks_"),
        "sync": figures_of("noizylab_sync_"),
    }
    return {path: Endpoint(SCOPE_OF[path], looked(route)) for path, route in routes.items()}
