"""Reading a cluster view the way people do: a health word per node, alerts, and the one-line summary.

Pure functions over the wire messages, shared by the tray, the dashboard, ``noizylab metrics`` and the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.core.words import plural
from noizylab_desktop.services.metrics.history import fullest_disk
from noizylab_desktop.services.metrics.settings import MetricsSettings

Health = Literal["ok", "busy", "warn", "down", "unknown"]
BUSY_RATIO = 0.9


@dataclass(frozen=True)
class Alert:
    """Something a person should hear about once, when it starts: a node down, a disk nearly full, a GPU hot."""

    key: str  # node id + what, to tell a new alert from one already raised
    node_id: str
    node: str
    what: Literal["down", "disk", "gpu"]
    message: str


def health(node: mpb.ClusterNode, settings: MetricsSettings) -> Health:
    """``down`` (red), ``warn`` (disk nearly full or GPU hot), ``busy`` (CPU or memory over 90%), else ``ok``."""
    if not node.online:
        return "down"
    if not node.HasField("metrics"):
        return "unknown"
    m = node.metrics
    if fullest_disk(m) >= settings.disk_warn_ratio or any(
        g.temperature_celsius >= settings.gpu_hot_celsius for g in m.gpus
    ):
        return "warn"
    memory = m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0
    return "busy" if m.cpu_ratio >= BUSY_RATIO or memory >= BUSY_RATIO else "ok"


def alerts(cluster: mpb.ClusterReply, settings: MetricsSettings) -> list[Alert]:
    """Every condition worth a notification right now."""
    found: list[Alert] = []
    for node in cluster.nodes:
        if not node.online:
            found.append(Alert(f"{node.id}/down", node.id, node.name, "down", f"{node.name} is down"))
            continue
        if not node.HasField("metrics"):
            continue
        for disk in node.metrics.disks:
            if disk.size_bytes and disk.used_bytes / disk.size_bytes >= settings.disk_warn_ratio:
                found.append(
                    Alert(
                        f"{node.id}/disk/{disk.mountpoint}",
                        node.id,
                        node.name,
                        "disk",
                        f"{node.name}: disk {disk.mountpoint} is {disk.used_bytes / disk.size_bytes:.0%} full "
                        f"({_bytes(disk.free_bytes)} left)",
                    )
                )
        for gpu in node.metrics.gpus:
            if gpu.temperature_celsius >= settings.gpu_hot_celsius:
                found.append(
                    Alert(
                        f"{node.id}/gpu/{gpu.index}",
                        node.id,
                        node.name,
                        "gpu",
                        f"{node.name}: GPU {gpu.index} is running hot at {gpu.temperature_celsius:.0f} °C",
                    )
                )
    return found


class AlertTracker:
    """Turns each tick's alerts into news: an alert once, when it starts; ``down`` only for a node seen up before.

    Peers are not reached yet just after a start: that is not news, and must not greet the person at every launch.
    """

    def __init__(self) -> None:
        self._raised: set[str] = set()
        self._was_up: set[str] = set()

    def update(self, cluster: mpb.ClusterReply, settings: MetricsSettings) -> list[Alert]:
        """The alerts that start with this view."""
        current = {
            a.key: a
            for a in alerts(cluster, settings)
            if a.what != "down" or a.node_id in self._was_up or a.key in self._raised
        }
        news = [a for key, a in current.items() if key not in self._raised]
        self._raised = set(current)
        self._was_up = {n.id for n in cluster.nodes if n.online}
        return news


def node_line(node: mpb.ClusterNode) -> str:
    """``alpha: CPU 12%, memory 41%, disk 73%, GPU 45% 71 °C`` or ``beta: down``."""
    if not node.online:
        return f"{node.name}: down"
    if not node.HasField("metrics"):
        return f"{node.name}: waiting for figures"
    m = node.metrics
    memory = m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0
    parts = [f"CPU {m.cpu_ratio:.0%}", f"memory {memory:.0%}", f"disk {fullest_disk(m):.0%}"]
    if m.gpus:
        hottest = max(m.gpus, key=lambda g: g.temperature_celsius)
        parts.append(f"GPU {max(g.utilization_ratio for g in m.gpus):.0%} {hottest.temperature_celsius:.0f} °C")
    return f"{node.name}: {', '.join(parts)}"


def summary(cluster: mpb.ClusterReply) -> str:
    """The one line for the tray tooltip and ``noizylab metrics``: how many nodes are up, and each in brief."""
    up = sum(1 for n in cluster.nodes if n.online)
    lines = [node_line(n) for n in cluster.nodes]
    return f"{up} of {plural(len(cluster.nodes), 'node')} up · " + " · ".join(lines)


def _bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def as_json(message: Message) -> dict[str, Any]:
    """A wire message as JSON with its field names (which carry the units) and zero values kept."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
