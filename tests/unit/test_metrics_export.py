"""Features' figures reach /metrics through the exporter: a feature of the test's own making on an in-process node."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.feature import Feature, Figure
from noizylab_desktop.node.node import Node
from noizylab_desktop.services.metrics.feature import MetricsFeature
from tests.conftest import write_config


class GadgetFeature:
    """A stand-in feature whose figures are whatever the test gives it."""

    name = "gadget"

    def __init__(self, figures: list[Figure]) -> None:
        self._figures = figures

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """No services."""

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return []

    def service_names(self) -> Sequence[str]:
        return []

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def figures(self) -> Iterable[Figure]:
        return list(self._figures)


def scrape_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: list[Figure], **metrics: Any) -> str:
    """Start a node with the metrics feature and a gadget; return its /metrics text (no token: public_metrics)."""
    write_config(tmp_path / "home", "alpha", metrics={"public_metrics": True, **metrics})
    paths = Paths.resolve(tmp_path / "home")
    settings = load_settings(paths)

    def gadget(node: Node) -> Feature:
        return GadgetFeature(figures)

    def factories() -> list[Any]:
        return [MetricsFeature, gadget]

    monkeypatch.setattr("noizylab_desktop.node.node.feature_factories", factories)

    async def go() -> str:
        node = Node(paths, settings)
        await node.start()
        try:
            feature = node.features["metrics"]
            assert isinstance(feature, MetricsFeature)
            await feature.tick()  # a sample taken now, after the gadget's figures exist
            url = f"http://127.0.0.1:{node.bound_ports['http']}/metrics"
            return await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        finally:
            await node.stop()

    return asyncio.run(go())


def promtool(text: str) -> str:
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return check.stdout + check.stderr


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_features_counters_gauges_and_histograms_are_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = [
        Figure("noizylab_gadget_files_total", "Files the gadget moved.", 12, "counter", {"peer": "beta"}),
        Figure("noizylab_gadget_files_total", "Files the gadget moved.", 3, "counter", {"peer": "gamma"}),
        Figure("noizylab_gadget_queue_length", "Jobs waiting.", 4),
        Figure(
            "noizylab_gadget_duration_seconds",
            "How long a job took.",
            7.5,
            "histogram",
            {},
            [(0.5, 1), (5.0, 2), (float("inf"), 3)],
            3,
        ),
        Figure("bad name!", "Not a Prometheus name.", 1),
        Figure("noizylab_gadget_labelled", "A label Prometheus reserves.", 1, labels={"__name__": "x"}),
    ]
    text = scrape_with(tmp_path, monkeypatch, figures)
    assert promtool(text) == ""
    lines = series(text)
    assert 'noizylab_gadget_files_total{peer="beta"} 12.0' in lines
    assert 'noizylab_gadget_files_total{peer="gamma"} 3.0' in lines
    assert "noizylab_gadget_queue_length 4.0" in lines
    assert 'noizylab_gadget_duration_seconds_bucket{le="5.0"} 2.0' in lines
    assert 'noizylab_gadget_duration_seconds_bucket{le="+Inf"} 3.0' in lines
    assert "noizylab_gadget_duration_seconds_count 3.0" in lines
    assert "noizylab_gadget_duration_seconds_sum 7.5" in lines
    assert "# TYPE noizylab_gadget_files_total counter" in text
    assert "# TYPE noizylab_gadget_duration_seconds histogram" in text
    assert "bad name" not in text and "noizylab_gadget_labelled" not in text, "bad figures are left out"
    assert "noizylab_metrics_dropped_series 0.0" in lines


def test_the_series_cap_leaves_out_whole_families_and_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flood = [Figure("noizylab_gadget_items", "One per item.", i, labels={"item": str(i)}) for i in range(3000)]
    text = scrape_with(tmp_path, monkeypatch, flood, max_series=500)
    promtool(text)
    lines = series(text)
    assert len(lines) <= 501
    assert "noizylab_metrics_dropped_series 3000.0" in lines
    assert "noizylab_memory_total_bytes" in text, "the node's own figures come first and stay"


def test_a_node_with_metrics_stops_twice_without_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Node.stop is idempotent: the tray's TrayApp.stop after its run stopped the node once (the Windows tier found
    "feature metrics did not stop cleanly": the second stop scheduled on the sampler's thread after its shutdown)."""
    write_config(tmp_path / "home", "alpha")
    paths = Paths.resolve(tmp_path / "home")
    settings = load_settings(paths)
    monkeypatch.setattr("noizylab_desktop.node.node.feature_factories", lambda: [MetricsFeature])

    async def go() -> None:
        node = Node(paths, settings)
        await node.start()
        await node.stop()
        await node.stop()

    asyncio.run(go())
    assert not [r for r in caplog.records if "did not stop cleanly" in r.getMessage()]
