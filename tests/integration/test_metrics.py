"""Metrics on real node processes: promtool on /metrics, tokens, figures against psutil, the cluster view."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import psutil
import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
from noizylab_desktop.core.transport import secure_channel
from tests.conftest import NodeProcess, wait_for

HTTP_TIMEOUT_S = 10.0


def get(node: NodeProcess, path: str, token: str | None) -> tuple[int, bytes, dict[str, str]]:
    """GET ``path`` from the node's HTTP port: status, body, headers."""
    port = node.status()["ports"]["http"]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, refused.read(), dict(refused.headers)


def api(node: NodeProcess, path: str, token: str) -> Any:
    status, body, _ = get(node, f"/api/v1/{path}", token)
    assert status == 200, body
    return json.loads(body)


def new_token(node: NodeProcess, name: str | None = None) -> str:
    args = ["token", "create", "--json", *(["--name", name] if name else [])]
    return str(json.loads(node.cli(*args).stdout)["token"])


def test_a_live_nodes_metrics_pass_promtool_and_include_rpc_figures(
    make_node: Callable[[str], NodeProcess],
) -> None:
    node = make_node("alpha").start()
    token = new_token(node)
    node.status()  # one Control/Status call, which the RPC interceptor must have timed

    def scraped() -> str:
        status, body, headers = get(node, "/metrics", token)
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        return text if 'method="/noizylab.grid.v1.Control/Status"' in text else ""

    text = wait_for(scraped, what="the Status call's figures in /metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == "", "promtool found lint problems"
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert 30 < len(series) <= 2000
    for expected in (
        "noizylab_node_info{",
        "noizylab_memory_total_bytes ",
        "noizylab_filesystem_free_bytes{",
        "noizylab_network_receive_bytes_total{",
        'noizylab_cpu_seconds_total{cpu="0",mode="idle"}',
        "noizylab_disk_read_bytes_total{",
        'noizylab_rpc_server_handling_seconds_bucket{le="+Inf",method="/noizylab.grid.v1.Control/Status"}',
        'noizylab_rpc_server_handled_total{code="OK",method="/noizylab.grid.v1.Control/Status"}',
    ):
        assert expected in text, expected


def test_the_api_needs_a_token_and_refuses_a_revoked_one(make_node: Callable[[str], NodeProcess]) -> None:
    node = make_node("alpha").start()
    status, body, headers = get(node, "/api/v1/nodes", None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "noizylab token create" in json.loads(body)["error"]
    assert get(node, "/metrics", None)[0] == 401
    assert get(node, "/api/v1/nodes", "nzl_not-a-real-token")[0] == 401

    token = new_token(node, "grafana")
    nodes = api(node, "nodes", token)
    assert [(n["name"], n["self"], n["online"]) for n in nodes] == [("alpha", True, True)]
    assert get(node, "/api/v1/nope", None)[0] == 401, "who asks is checked before what is asked"
    status, body, _ = get(node, "/api/v1/nope", token)
    assert status == 404 and "no such endpoint /api/v1/nope" in json.loads(body)["error"]
    listed = node.json("token", "list")
    assert [(t["name"], t["revoked_at"]) for t in listed] == [("grafana", None)]
    assert listed[0]["last_used_at"] is not None

    # Only a hash is kept: the token itself is nowhere in the state folder.
    for path in (node.home / "state").rglob("api-tokens.sqlite*"):
        assert token.encode() not in path.read_bytes()
    with sqlite3.connect(node.home / "state" / "api-tokens.sqlite") as db:
        assert len(db.execute("SELECT hash FROM tokens").fetchone()[0]) == 32

    shown = node.cli("token", "revoke", "grafana").stdout
    assert "revoked token grafana" in shown
    status, body, _ = get(node, "/api/v1/nodes", token)
    assert status == 403 and "revoked" in json.loads(body)["error"]
    assert get(node, "/metrics", token)[0] == 403


def test_the_http_port_listens_on_loopback_only_by_default(make_node: Callable[[str], NodeProcess]) -> None:
    node = make_node("alpha").start()
    port = node.status()["ports"]["http"]
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S):
        pass
    outward = [
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    if not outward:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((outward[0], port), timeout=HTTP_TIMEOUT_S).close()


def test_token_mistakes_get_one_line_errors(make_node: Callable[[str], NodeProcess]) -> None:
    node = make_node("alpha")
    node.cli("token", "create", "--name", "ci")
    twice = node.cli("token", "create", "--name", "ci", check=False)
    assert twice.returncode == 1
    assert twice.stderr.strip() == (
        "noizylab: error: a token named 'ci' exists already: pick another --name or revoke it first"
    )
    missing = node.cli("token", "revoke", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "noizylab: error: no active token has the ID or name 'nope': see `noizylab token list`"
    )
    assert [t["name"] for t in node.json("token", "list")] == ["ci"], "a failed command lost or added nothing"
    not_running = node.cli("metrics", check=False)
    assert not_running.returncode == 1
    assert not_running.stderr.startswith("noizylab: error: no node ") and "noizylab start" in not_running.stderr


def test_figures_agree_with_psutil(make_node: Callable[[str], NodeProcess]) -> None:
    node = make_node("alpha").start()
    token = new_token(node)
    before = psutil.net_io_counters(pernic=True)["lo"].bytes_recv
    asked_at = time.time()
    fresh = wait_for(
        lambda: (m := api(node, "metrics", token)["metrics"])["at_unix_seconds"] > asked_at and m,
        what="a sample taken after the first psutil reading",
    )
    after = psutil.net_io_counters(pernic=True)["lo"].bytes_recv

    assert fresh["memory_total_bytes"] == psutil.virtual_memory().total
    assert fresh["swap_total_bytes"] == psutil.swap_memory().total
    assert fresh["cpu_count"] == psutil.cpu_count() == len(fresh["cpu_core_ratio"])
    assert all(0.0 <= c <= 1.0 for c in fresh["cpu_core_ratio"])
    assert abs(fresh["memory_available_bytes"] - psutil.virtual_memory().available) < 0.1 * fresh["memory_total_bytes"]
    root = next(d for d in fresh["disks"] if d["mountpoint"] == "/")
    assert root["size_bytes"] == psutil.disk_usage("/").total
    assert abs(root["free_bytes"] - psutil.disk_usage("/").free) < 1e9
    devices = {n["device"]: n for n in fresh["network"]}
    assert set(devices) == set(psutil.net_io_counters(pernic=True))
    assert before <= devices["lo"]["receive_bytes_total"] <= after
    assert abs(fresh["load1"] - os.getloadavg()[0]) < 2.0
    idle_now = psutil.cpu_times(percpu=True)[0].idle
    assert 0 < fresh["cpu_seconds"][0]["seconds_by_mode"]["idle"] <= idle_now
    disks_io = {d["device"] for d in fresh["disk_io"]}
    assert disks_io and disks_io <= set(psutil.disk_io_counters(perdisk=True))
    top = fresh["top_processes"]
    assert 1 <= len(top) <= 5 and all(p["name"] and p["pid"] > 0 and p["memory_rss_bytes"] >= 0 for p in top)
    assert [p["cpu_ratio"] for p in top] == sorted((p["cpu_ratio"] for p in top), reverse=True)

    history = api(node, "history?seconds=60", token)
    assert history["interval_seconds"] == 1.0
    stamps = [p["at_unix_seconds"] for p in history["points"]]
    assert stamps == sorted(stamps) and len(stamps) >= 2
    assert all(0.9 < b - a < 1.5 for a, b in zip(stamps, stamps[1:], strict=False)), "one point a second"
    status, body, _ = get(node, "/api/v1/history?seconds=lots", token)
    assert status == 400 and json.loads(body)["error"] == "seconds='lots' is not a number"


def test_the_cluster_view_shows_a_stopped_peer_as_down(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired

    def beta_seen_by_alpha() -> dict[str, Any]:
        nodes = {n["name"]: n for n in alpha.json("metrics")["nodes"]}
        return nodes.get("beta", {})

    seen = wait_for(lambda: (b := beta_seen_by_alpha()).get("metrics") and b, what="alpha to pull beta's figures")
    assert seen["online"] and seen["health"] in ("ok", "busy", "warn")
    assert seen["metrics"]["memory_total_bytes"] == psutil.virtual_memory().total  # same machine here
    assert "beta: CPU" in alpha.cli("metrics").stdout

    beta.stop()
    down = wait_for(lambda: (b := beta_seen_by_alpha()) and not b["online"] and b, timeout=20, what="beta down")
    assert down["health"] == "down"
    assert "metrics" not in down, "a down peer shows no stale numbers"
    line = alpha.cli("metrics").stdout.strip()
    assert line.startswith("1 of 2 nodes up · alpha: CPU ") and line.endswith(" · beta: down")
    assert "beta is down" in (alpha.home / "logs" / "noizylab.log").read_text()


def test_a_peer_may_read_figures_but_not_the_cluster_view_and_strangers_nothing(
    paired: tuple[NodeProcess, NodeProcess], make_node: Callable[[str], NodeProcess]
) -> None:
    alpha, beta = paired
    stranger = make_node("stranger")
    stranger.cli("id")  # makes its identity; it never pairs

    async def ask(asker: NodeProcess) -> tuple[str, grpc.StatusCode, grpc.StatusCode]:
        async with secure_channel(asker.identity(), alpha.identity().cert_pem, alpha.grpc_address) as channel:
            stub = mpb_grpc.MetricsStub(channel)
            name, codes = "", []
            try:
                name = (await stub.Snapshot(pb.Empty(), timeout=5)).name
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
            try:
                await stub.Cluster(pb.Empty(), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
        return name, codes[0], codes[1]

    assert asyncio.run(ask(beta)) == ("alpha", grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED)
    assert asyncio.run(ask(stranger)) == ("", grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)


def test_a_busy_http_port_is_a_one_line_error(make_node: Callable[[str], NodeProcess]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = make_node("alpha")
        result = node.cli("start", "--http-port", str(port), check=False)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for metrics" in result.stderr
    assert "choose another port with --http-port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"interval_s": "fast"}, "metrics.interval_s must be a number of seconds, 0.1 or more, not 'fast'"),
        ({"colour": "blue"}, "unknown setting metrics.colour"),
    ],
)
def test_bad_metrics_settings_are_one_line_errors(
    make_node: Callable[..., NodeProcess], table: dict[str, Any], message: str
) -> None:
    node = make_node("alpha", metrics=table)
    result = node.cli("start", check=False)
    assert result.returncode == 1 and message in result.stderr


def test_every_features_figures_reach_metrics_and_a_finished_task_is_counted(
    make_node: Callable[[str], NodeProcess],
) -> None:
    node = make_node("alpha").start()
    token = new_token(node)
    assert node.cli("run", "--on", "alpha", "--", "true").returncode == 0

    def scraped() -> str:
        status, body, _ = get(node, "/metrics", token)
        text = body.decode() if status == 200 else ""
        return text if 'noizylab_tasks_ended_total{state="exited"} 1.0' in text else ""

    text = wait_for(scraped, what="the finished task in /metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
    for family in (
        "noizylab_tasks_running ",
        "noizylab_tasks_queued ",
        'noizylab_tasks_duration_seconds_bucket{le="+Inf"} 1.0',
        "noizylab_tasks_duration_seconds_count 1.0",
        "noizylab_clipboard_paused ",
        "noizylab_display_sessions ",
        "noizylab_display_frame_rate_hertz ",
        "noizylab_display_viewer_latency_seconds ",
        "noizylab_sync_lag_seconds ",
        "noizylab_sync_conflicts_total ",
    ):
        assert family in text, family
