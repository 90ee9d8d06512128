"""Sampling this machine through psutil: CPU per core, load, memory, swap, disks, network, top processes.

A ``SystemSampler`` keeps what it needs between samples (network counters for rates, the process table for CPU
shares, the partition list); call ``sample`` from a worker thread, once per interval. A reading the OS refuses
(Windows with its performance counters disabled refuses swap; Wine refuses CPU times) is left out of the sample and
logged once: a figure missing from the dashboard must not stop the node.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import psutil

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_DISKS = 16
MAX_INTERFACES = 16
PARTITIONS_EVERY_S = 60.0
# Read-only images (snaps, squashfs) are always 100% full: warning about them would be noise.
SKIPPED_FSTYPES = {"squashfs", "iso9660", "tmpfs", "devtmpfs", "overlay"}


@dataclass(frozen=True)
class Partition:
    """A mounted filesystem worth watching."""

    device: str
    mountpoint: str
    fstype: str


def partitions() -> list[Partition]:
    """Real filesystems, one per device (bind mounts of the same device left out), root first."""
    chosen: dict[str, Partition] = {}
    for part in sorted(psutil.disk_partitions(all=False), key=lambda p: len(p.mountpoint)):
        if part.fstype in SKIPPED_FSTYPES or part.device in chosen:
            continue
        chosen[part.device] = Partition(part.device, part.mountpoint, part.fstype)
    found = list(chosen.values())
    root = os.path.abspath(os.sep)
    if not any(p.mountpoint == root for p in found):
        # In a container the root is an overlay, which psutil counts as virtual; it still fills up.
        found.insert(0, Partition("rootfs", root, "rootfs"))
    return found[:MAX_DISKS]


class SystemSampler:
    """One sample of this machine per call; rates are computed against the previous call."""

    def __init__(self, process_interval_s: float = 10.0, top: int = 5) -> None:
        self.process_interval_s = process_interval_s
        self.top = top
        self._net: dict[str, tuple[float, float]] = {}
        self._net_at = 0.0
        self._parts: list[Partition] = []
        self._parts_at = -math.inf
        self._top: list[mpb.ProcessUsage] = []
        # Due at the first sample whatever pace it asks for: the monotonic clock starts near 0 at boot, so any
        # finite "long ago" would not be long enough on a machine up for less than the asked interval.
        self._top_at = -math.inf
        self._ncpu = psutil.cpu_count() or 1
        self._refused: set[str] = set()
        # Busy shares and per-process CPU are measured against the previous reading: take one now, so the first
        # sample already shows real figures.
        self._cpu: list[dict[str, float]] = self._cpu_times()
        if top:
            self._processes()

    def walk_soon(self) -> None:
        """Look up the busiest processes at the next sample (someone started looking; the list may be old)."""
        self._top_at = -math.inf

    def sample(self, into: mpb.NodeMetrics, process_interval_s: float | None = None) -> None:
        """Fill the system part of ``into``; the process table is walked every ``process_interval_s`` (if given)."""
        now = time.monotonic()
        per_cpu = self._cpu_times()
        for index, modes in enumerate(per_cpu):
            into.cpu_seconds.add(cpu=index, seconds_by_mode=modes)
        # Busy shares from our own previous reading: psutil.cpu_percent keeps its previous reading per thread.
        cores = [_busy(before, now) for before, now in zip(self._cpu, per_cpu, strict=False)] or [0.0] * len(per_cpu)
        self._cpu = per_cpu
        into.cpu_core_ratio.extend(cores)
        into.cpu_ratio = sum(cores) / len(cores) if cores else 0.0
        into.cpu_count = len(per_cpu) or self._ncpu
        if hasattr(os, "getloadavg"):
            into.load1, into.load5, into.load15 = os.getloadavg()
        memory = psutil.virtual_memory()
        into.memory_total_bytes = memory.total
        into.memory_available_bytes = memory.available
        into.memory_used_bytes = memory.total - memory.available
        swap = self._reading("swap", psutil.swap_memory)
        if swap is not None:
            into.swap_total_bytes = swap.total
            into.swap_used_bytes = swap.used
        self._disks(into, now)
        self._disk_io(into)
        self._network(into, now)
        walk_every = self.process_interval_s if process_interval_s is None else process_interval_s
        if self.top and now - self._top_at >= walk_every:
            self._top_at = now
            self._top = self._processes()
        into.top_processes.extend(self._top)

    def _cpu_times(self) -> list[dict[str, float]]:
        """Seconds per mode of each CPU; none when the OS refuses them."""
        per_cpu = self._reading("CPU times", lambda: psutil.cpu_times(percpu=True)) or []
        # Linux counts guest time inside user time already; node_exporter leaves it out of the modes too.
        return [{k: v for k, v in times._asdict().items() if not k.startswith("guest")} for times in per_cpu]

    def _reading(self, what: str, read: Callable[[], T]) -> T | None:
        """``read()``, or None when the OS refuses it (said once per sampler, not once per sample)."""
        try:
            return read()
        except (OSError, RuntimeError) as exc:  # psutil raises RuntimeError for Windows' performance counters
            if what not in self._refused:
                self._refused.add(what)
                logger.warning("this machine does not give its %s (%s): left out of the metrics", what, exc)
            return None

    def _disks(self, into: mpb.NodeMetrics, now: float) -> None:
        if now - self._parts_at >= PARTITIONS_EVERY_S:
            self._parts_at = now
            self._parts = partitions()
        for part in self._parts:
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:  # unmounted since the list was read, or not readable by this user
                continue
            into.disks.add(
                mountpoint=part.mountpoint,
                device=part.device,
                fstype=part.fstype,
                size_bytes=usage.total,
                used_bytes=usage.used,
                free_bytes=usage.free,
            )

    def _disk_io(self, into: mpb.NodeMetrics) -> None:
        counters = psutil.disk_io_counters(perdisk=True, nowrap=True) or {}
        # Whole disks only: partitions and device-mapper layers would count the same bytes twice or thrice.
        wanted = {device: io for device, io in counters.items() if not _is_partition(device, counters)}
        for device, io in sorted(wanted.items())[:MAX_DISKS]:
            into.disk_io.add(
                device=device,
                read_bytes_total=io.read_bytes,
                written_bytes_total=io.write_bytes,
                reads_total=io.read_count,
                writes_total=io.write_count,
            )

    def _network(self, into: mpb.NodeMetrics, now: float) -> None:
        counters = psutil.net_io_counters(pernic=True)
        elapsed = now - self._net_at if self._net_at else 0.0
        current: dict[str, tuple[float, float]] = {}
        for device, io in sorted(counters.items())[:MAX_INTERFACES]:
            rx, tx = float(io.bytes_recv), float(io.bytes_sent)
            current[device] = (rx, tx)
            before = self._net.get(device)
            rx_rate = tx_rate = 0.0
            if before is not None and elapsed > 0:
                rx_rate = max(0.0, rx - before[0]) / elapsed
                tx_rate = max(0.0, tx - before[1]) / elapsed
            into.network.add(
                device=device,
                receive_bytes_total=rx,
                transmit_bytes_total=tx,
                receive_bytes_per_second=rx_rate,
                transmit_bytes_per_second=tx_rate,
            )
        self._net, self._net_at = current, now

    def _processes(self) -> list[mpb.ProcessUsage]:
        """The busiest processes since the previous walk (psutil keeps the Process objects between walks)."""
        rows: list[mpb.ProcessUsage] = []
        for proc in psutil.process_iter(["name", "cpu_percent", "memory_info"]):
            info = proc.info
            memory = info.get("memory_info")
            rows.append(
                mpb.ProcessUsage(
                    pid=proc.pid,
                    name=info.get("name") or "?",
                    cpu_ratio=(info.get("cpu_percent") or 0.0) / 100,
                    memory_rss_bytes=float(memory.rss) if memory is not None else 0.0,
                )
            )
        rows.sort(key=lambda r: (r.cpu_ratio, r.memory_rss_bytes), reverse=True)
        return rows[: self.top]


def _is_partition(device: str, all_devices: Mapping[str, object]) -> bool:
    """``sda1`` when ``sda`` is there, ``nvme0n1p2`` when ``nvme0n1`` is; loop and ram devices count as noise too."""
    if device.startswith(("loop", "ram", "zram")):
        return True
    stem = device.rstrip("0123456789")
    return stem != device and (stem in all_devices or (stem.endswith("p") and stem[:-1] in all_devices))


def _busy(before: Mapping[str, float], now: Mapping[str, float]) -> float:
    """The busy share of one CPU between two readings of its seconds per mode."""
    total = sum(now.values()) - sum(before.values())
    idle = sum(now.get(k, 0.0) - before.get(k, 0.0) for k in ("idle", "iowait"))
    return min(1.0, max(0.0, 1 - idle / total)) if total > 0 else 0.0
