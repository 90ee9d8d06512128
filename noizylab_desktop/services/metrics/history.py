"""The last hour of each node's headline figures at the sampling resolution, in fixed-size ring buffers."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb


@dataclass(frozen=True, slots=True)
class Point:
    """One moment of one node, for charts and ``/api/v1/history``."""

    at_unix_seconds: float
    cpu_ratio: float
    memory_used_ratio: float
    disk_used_ratio: float  # the fullest disk
    receive_bytes_per_second: float
    transmit_bytes_per_second: float
    gpu_utilization_ratio: float  # the busiest GPU; 0 without one
    gpu_temperature_celsius: float  # the hottest GPU; 0 without one

    @classmethod
    def of(cls, m: mpb.NodeMetrics) -> Point:
        """The headline figures of one snapshot."""
        return cls(
            at_unix_seconds=m.at_unix_seconds,
            cpu_ratio=m.cpu_ratio,
            memory_used_ratio=m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0,
            disk_used_ratio=fullest_disk(m),
            receive_bytes_per_second=sum(n.receive_bytes_per_second for n in m.network if n.device != "lo"),
            transmit_bytes_per_second=sum(n.transmit_bytes_per_second for n in m.network if n.device != "lo"),
            gpu_utilization_ratio=max((g.utilization_ratio for g in m.gpus), default=0.0),
            gpu_temperature_celsius=max((g.temperature_celsius for g in m.gpus), default=0.0),
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fullest_disk(m: mpb.NodeMetrics) -> float:
    """The used share of the fullest disk (0 when none)."""
    return max((d.used_bytes / d.size_bytes for d in m.disks if d.size_bytes), default=0.0)


class History:
    """``seconds`` points per node (one a sample); the oldest fall off."""

    def __init__(self, points: int = 3600) -> None:
        self.points = max(1, points)
        self._nodes: dict[str, deque[Point]] = {}

    def add(self, node_id: str, metrics: mpb.NodeMetrics) -> Point:
        """Record one snapshot of ``node_id``."""
        point = Point.of(metrics)
        ring = self._nodes.setdefault(node_id, deque(maxlen=self.points))
        if not ring or ring[-1].at_unix_seconds != point.at_unix_seconds:  # the same snapshot pulled twice
            ring.append(point)
        return point

    def since(self, node_id: str, since_unix_seconds: float = 0.0) -> list[Point]:
        """``node_id``'s points at or after the given moment, oldest first."""
        ring = self._nodes.get(node_id)
        if ring is None:
            return []
        return [p for p in list(ring) if p.at_unix_seconds >= since_unix_seconds]

    def forget(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
