"""The metrics feature's pure parts: settings, tokens, history, health and alerts, the RPC histograms."""

from __future__ import annotations

from pathlib import Path

import pytest

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.core.errors import ConfigError, TokenError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.metrics.history import History
from noizylab_desktop.services.metrics.rpc import BUCKETS, RpcMetrics
from noizylab_desktop.services.metrics.settings import MetricsSettings
from noizylab_desktop.services.metrics.tokens import TokenStore, Verdict
from noizylab_desktop.services.metrics.view import AlertTracker, alerts, health, summary

GB = 1e9


def node(name: str, online: bool = True, disk_used: float = 0.5, gpu_c: float | None = None) -> mpb.ClusterNode:
    found = mpb.ClusterNode(id=f"ID-{name}", name=name, online=online)
    if online:
        m = found.metrics
        m.name, m.cpu_ratio, m.memory_total_bytes, m.memory_used_bytes = name, 0.25, 16 * GB, 4 * GB
        m.disks.add(
            mountpoint="/", size_bytes=100 * GB, used_bytes=disk_used * 100 * GB, free_bytes=(1 - disk_used) * 100 * GB
        )
        if gpu_c is not None:
            m.gpus.add(index=0, utilization_ratio=0.5, temperature_celsius=gpu_c)
    return found


def test_settings_defaults_and_one_line_errors() -> None:
    assert parse_section(MetricsSettings, {}) == MetricsSettings()
    assert parse_section(MetricsSettings, {"interval_s": 2, "top_processes": 3}).interval_s == 2.0
    for raw, message in (
        ({"interval_s": 0}, "metrics.interval_s must be a number of seconds, 0.1 or more, not 0"),
        ({"interval_s": 0.01}, "metrics.interval_s must be a number of seconds, 0.1 or more, not 0.01"),
        ({"public_metrics": "yes"}, "metrics.public_metrics must be true or false, not 'yes'"),
        ({"max_series": -1}, "metrics.max_series must be a whole number, 0 or more, not -1"),
        ({"disk_warn_ratio": 1.5}, "metrics.disk_warn_ratio must be a number above 0 and at most 1, not 1.5"),
    ):
        with pytest.raises(ConfigError) as raised:
            parse_section(MetricsSettings, raw)
        assert raised.value.message == message


def test_tokens_are_checked_by_hash_and_revocation_is_final(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.sqlite")
    info, token = store.create("grafana")
    other_info, other = store.create(None)
    assert token.startswith("nzl_") and len(token) > 40 and token != other
    assert other_info.name == f"token-{other_info.id}"
    assert store.check(token, "metrics") is Verdict.VALID
    assert store.check(token + "x", "metrics") is Verdict.UNKNOWN
    store.revoke(info.id)
    assert store.check(token, "metrics") is Verdict.REVOKED
    assert store.check(other, "metrics") is Verdict.VALID
    with pytest.raises(TokenError):
        store.revoke(info.id)  # already revoked: no active token by that ID
    with pytest.raises(TokenError):
        store.create("   ")
    again, _ = store.create("grafana")  # the name is free again once its token is revoked
    assert [t.name for t in store.list()] == ["grafana", other_info.name, "grafana"]
    assert again.id != info.id
    store.close()


def test_history_keeps_only_the_newest_points_and_skips_repeats() -> None:
    history = History(points=3)
    for at in (1.0, 2.0, 2.0, 3.0, 4.0):
        history.add(
            "A", mpb.NodeMetrics(at_unix_seconds=at, cpu_ratio=at / 10, memory_total_bytes=8, memory_used_bytes=2)
        )
    points = history.since("A")
    assert [p.at_unix_seconds for p in points] == [2.0, 3.0, 4.0]
    assert points[-1].cpu_ratio == 0.4 and points[-1].memory_used_ratio == 0.25
    assert [p.at_unix_seconds for p in history.since("A", 3.0)] == [3.0, 4.0]
    assert history.since("B") == []


def test_health_alerts_and_summary_name_what_is_wrong() -> None:
    settings = MetricsSettings(disk_warn_ratio=0.9, gpu_hot_celsius=85)
    cluster = mpb.ClusterReply(
        nodes=[node("alpha"), node("beta", online=False), node("gamma", disk_used=0.95, gpu_c=90)]
    )
    assert [health(n, settings) for n in cluster.nodes] == ["ok", "down", "warn"]
    found = alerts(cluster, settings)
    assert [(a.node, a.what) for a in found] == [("beta", "down"), ("gamma", "disk"), ("gamma", "gpu")]
    assert found[1].message == "gamma: disk / is 95% full (5.0 GB left)"
    assert found[2].message == "gamma: GPU 0 is running hot at 90 °C"
    assert summary(cluster) == (
        "2 of 3 nodes up · alpha: CPU 25%, memory 25%, disk 50% · beta: down · "
        "gamma: CPU 25%, memory 25%, disk 95%, GPU 50% 90 °C"
    )


def test_rpc_histograms_are_cumulative_and_errors_counted_per_method() -> None:
    rpc = RpcMetrics()
    for seconds, code in ((0.0002, "OK"), (0.003, "OK"), (100.0, "UNAVAILABLE")):
        rpc.record("/svc/Call", seconds, code)
    figures = {(f.name, tuple(sorted(f.labels.items()))): f for f in rpc.figures()}
    hist = figures[("noizylab_rpc_server_handling_seconds", (("method", "/svc/Call"),))]
    assert hist.count == 3 and hist.value == pytest.approx(100.0032)
    assert len(hist.buckets) == len(BUCKETS) + 1 and hist.buckets[-1] == (float("inf"), 3.0)
    assert dict(hist.buckets)[0.0005] == 1 and dict(hist.buckets)[0.005] == 2 and dict(hist.buckets)[30.0] == 2
    assert figures[("noizylab_rpc_server_errors_total", (("method", "/svc/Call"),))].value == 1
    assert figures[("noizylab_rpc_server_handled_total", (("code", "OK"), ("method", "/svc/Call")))].value == 2


def test_alerts_are_news_once_and_a_peer_never_reached_is_not_news() -> None:
    tracker = AlertTracker()

    def tick(beta_up: bool, gamma_disk: float = 0.5) -> list[tuple[str, str]]:
        cluster = mpb.ClusterReply(nodes=[node("alpha"), node("beta", beta_up), node("gamma", disk_used=gamma_disk)])
        return [(a.node, a.what) for a in tracker.update(cluster, MetricsSettings())]

    # Just after a start: beta not reached yet (not news), gamma's disk already nearly full (news).
    assert tick(beta_up=False, gamma_disk=0.95) == [("gamma", "disk")]
    assert tick(beta_up=True, gamma_disk=0.95) == []
    assert tick(beta_up=False) == [("beta", "down")]
    assert tick(beta_up=False) == []
    assert tick(beta_up=True) == []
    assert tick(beta_up=False) == [("beta", "down")], "a second outage is news again"


def test_cpu_busy_share_comes_from_two_readings_of_seconds_per_mode() -> None:
    from noizylab_desktop.services.metrics.system import _busy

    before = {"user": 10.0, "system": 5.0, "idle": 80.0, "iowait": 5.0}
    after = {"user": 16.0, "system": 7.0, "idle": 90.0, "iowait": 7.0}
    assert _busy(before, after) == pytest.approx(1 - 12 / 20)
    assert _busy(before, before) == 0.0, "no time passed: nothing to say, not a division by zero"
