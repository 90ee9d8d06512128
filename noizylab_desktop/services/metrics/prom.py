"""The Prometheus side: this node's snapshot and every feature's figures as metric families for ``/metrics``.

Names follow node_exporter's conventions (base units, ``_total`` counters, ``_info`` for metadata). Labels are
bounded sets (cores, devices, mountpoints, GPUs, gRPC methods, peers), never task IDs or file paths; a cap on the
number of series keeps one misbehaving feature from flooding Prometheus.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.core.feature import Figure

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class PeerHealth:
    """One peer as the registry sees it, for ``noizylab_peer_up``."""

    name: str
    online: bool
    rtt_seconds: float


@dataclass(frozen=True)
class Scrape:
    """Everything one ``/metrics`` answer shows."""

    node_id: str
    name: str
    version: str
    metrics: mpb.NodeMetrics
    figures: Sequence[Figure]
    peers: Sequence[PeerHealth]
    collect_seconds: float


def _gauge(name: str, help: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def system_families(s: Scrape) -> Iterator[Metric]:
    """The node's own system figures."""
    m = s.metrics
    info = InfoMetricFamily("noizylab_node", "This node's identity.", labels=["id", "name", "version"])
    info.add_metric([s.node_id, s.name, s.version], {})
    yield info
    yield _gauge("noizylab_uptime_seconds", "Seconds since this node started.", m.uptime_seconds)
    yield _gauge("noizylab_cpus", "Logical CPUs.", m.cpu_count)
    cores = GaugeMetricFamily("noizylab_cpu_usage_ratio", "Busy share of each logical CPU (0-1).", labels=["cpu"])
    for index, ratio in enumerate(m.cpu_core_ratio):
        cores.add_metric([str(index)], ratio)
    yield cores
    seconds = CounterMetricFamily(
        "noizylab_cpu_seconds", "Seconds each CPU spent in each mode.", labels=["cpu", "mode"]
    )
    for cpu in m.cpu_seconds:
        for mode, value in sorted(cpu.seconds_by_mode.items()):
            seconds.add_metric([str(cpu.cpu), mode], value)
    yield seconds
    for period, value in (("1", m.load1), ("5", m.load5), ("15", m.load15)):
        yield _gauge(f"noizylab_load{period}", f"{period}-minute load average.", value)
    yield _gauge("noizylab_memory_total_bytes", "Physical memory.", m.memory_total_bytes)
    yield _gauge("noizylab_memory_available_bytes", "Memory available without swapping.", m.memory_available_bytes)
    yield _gauge("noizylab_swap_total_bytes", "Swap space.", m.swap_total_bytes)
    yield _gauge("noizylab_swap_used_bytes", "Swap in use.", m.swap_used_bytes)
    labels = ["device", "mountpoint", "fstype"]
    size = GaugeMetricFamily("noizylab_filesystem_size_bytes", "Filesystem size.", labels=labels)
    free = GaugeMetricFamily("noizylab_filesystem_free_bytes", "Filesystem space left.", labels=labels)
    for disk in m.disks:
        size.add_metric([disk.device, disk.mountpoint, disk.fstype], disk.size_bytes)
        free.add_metric([disk.device, disk.mountpoint, disk.fstype], disk.free_bytes)
    yield size
    yield free
    io_families = [
        CounterMetricFamily(f"noizylab_disk_{what}", help, labels=["device"])
        for what, help in (
            ("read_bytes", "Bytes read from the disk."),
            ("written_bytes", "Bytes written to the disk."),
            ("reads_completed", "Reads completed."),
            ("writes_completed", "Writes completed."),
        )
    ]
    for io in m.disk_io:
        for family, value in zip(
            io_families, (io.read_bytes_total, io.written_bytes_total, io.reads_total, io.writes_total), strict=True
        ):
            family.add_metric([io.device], value)
    yield from io_families
    rx = CounterMetricFamily("noizylab_network_receive_bytes", "Bytes received.", labels=["device"])
    tx = CounterMetricFamily("noizylab_network_transmit_bytes", "Bytes sent.", labels=["device"])
    for net in m.network:
        rx.add_metric([net.device], net.receive_bytes_total)
        tx.add_metric([net.device], net.transmit_bytes_total)
    yield rx
    yield tx
    yield from gpu_families(m.gpus)
    up = GaugeMetricFamily("noizylab_peer_up", "1 when the paired peer answers heartbeats.", labels=["peer"])
    rtt = GaugeMetricFamily("noizylab_peer_rtt_seconds", "Heartbeat round trip to the peer.", labels=["peer"])
    for peer in s.peers:
        up.add_metric([peer.name], 1.0 if peer.online else 0.0)
        if peer.online:
            rtt.add_metric([peer.name], peer.rtt_seconds)
    yield up
    yield rtt
    yield _gauge("noizylab_metrics_collect_seconds", "Time the last sample of this machine took.", s.collect_seconds)


def gpu_families(gpus: Sequence[mpb.GpuUsage]) -> Iterator[Metric]:
    """GPU figures read through NVML; no families at all without a GPU."""
    if not gpus:
        return
    info = InfoMetricFamily("noizylab_gpu", "Each GPU's model.", labels=["gpu", "name", "uuid"])
    for gpu in gpus:
        info.add_metric([str(gpu.index), gpu.name, gpu.uuid], {})
    yield info
    for attr, name, help in (
        ("utilization_ratio", "noizylab_gpu_utilization_ratio", "Busy share of the GPU (0-1)."),
        ("memory_used_bytes", "noizylab_gpu_memory_used_bytes", "GPU memory in use."),
        ("memory_total_bytes", "noizylab_gpu_memory_total_bytes", "GPU memory."),
        ("temperature_celsius", "noizylab_gpu_temperature_celsius", "GPU core temperature."),
        ("power_watts", "noizylab_gpu_power_watts", "GPU power draw."),
        ("encoder_utilization_ratio", "noizylab_gpu_encoder_utilization_ratio", "Video encoder busy share (0-1)."),
        ("decoder_utilization_ratio", "noizylab_gpu_decoder_utilization_ratio", "Video decoder busy share (0-1)."),
    ):
        family = GaugeMetricFamily(name, help, labels=["gpu"])
        for gpu in gpus:
            family.add_metric([str(gpu.index)], getattr(gpu, attr))
        yield family


def figure_families(figures: Iterable[Figure]) -> Iterator[Metric]:
    """Features' figures grouped into families; a badly named figure is skipped (and logged), never fatal."""
    groups: dict[str, list[Figure]] = {}
    for figure in figures:
        bad_label = next((k for k in figure.labels if not LABEL.match(k) or k.startswith("__")), None)
        if not NAME.match(figure.name) or bad_label is not None:
            logger.warning("skipped figure %r: not a valid Prometheus name or label (%s)", figure.name, bad_label)
            continue
        first = groups.setdefault(figure.name, [figure])
        if first[0] is not figure:
            if first[0].kind != figure.kind:
                logger.warning("skipped figure %r: kind %s clashes with %s", figure.name, figure.kind, first[0].kind)
                continue
            first.append(figure)
    for name, group in groups.items():
        keys = sorted({k for f in group for k in f.labels})
        kind = group[0].kind
        family: Metric
        if kind == "counter":
            family = CounterMetricFamily(name, group[0].help, labels=keys)
        elif kind == "histogram":
            family = HistogramMetricFamily(name, group[0].help, labels=keys)
        else:
            family = GaugeMetricFamily(name, group[0].help, labels=keys)
        for figure in group:
            values = [figure.labels.get(k, "") for k in keys]
            if isinstance(family, HistogramMetricFamily):
                buckets = [(_bound(b), c) for b, c in figure.buckets]
                if not buckets or buckets[-1][0] != "+Inf":
                    buckets.append(("+Inf", figure.count))
                family.add_metric(values, buckets, figure.value)
            else:
                family.add_metric(values, figure.value)
        yield family


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def capped(families: Iterable[Metric], max_series: int) -> Iterator[Metric]:
    """At most ``max_series`` samples in all; whole families past the cap are left out and counted."""
    seen = dropped = 0
    for family in families:
        if seen + len(family.samples) > max_series:
            dropped += len(family.samples)
            continue
        seen += len(family.samples)
        yield family
    if dropped:
        logger.warning("left %d series out of /metrics: over the cap of %d", dropped, max_series)
    yield _gauge("noizylab_metrics_dropped_series", "Series left out of this scrape by the series cap.", dropped)


ScrapeSource = Callable[[], "Scrape"]


class ScrapeCollector:
    """A prometheus_client collector over a function that gives the current ``Scrape``."""

    def __init__(self, current: ScrapeSource, max_series: int) -> None:
        self._current = current
        self._max_series = max_series

    def collect(self) -> Iterator[Metric]:
        s = self._current()
        yield from capped((*system_families(s), *figure_families(s.figures)), self._max_series)


def registry_for(current: ScrapeSource, max_series: int) -> CollectorRegistry:
    """A registry with only our collector (none of prometheus_client's process or platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(current, max_series))
    return registry
