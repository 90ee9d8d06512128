"""What this machine can do: OS, CPUs, memory, GPUs (through NVML when an NVIDIA driver is present)."""

from __future__ import annotations

import logging
import os
import platform
import sys
from dataclasses import dataclass

import psutil

from noizylab_desktop._proto import noizylab_grid_pb2 as pb

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_bytes: int
    memory_free_bytes: int


def os_name() -> str:
    """``linux``, ``darwin`` or ``windows``."""
    return "windows" if sys.platform.startswith("win") else sys.platform.rstrip("0123456789")


def gpus() -> list[GpuInfo]:
    """NVIDIA GPUs via NVML; an empty list where there is no driver or no library."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        logger.debug("no NVML: %s", exc)
        return []
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_bytes=int(memory.total),
                    memory_free_bytes=int(memory.free),
                )
            )
        return found
    except pynvml.NVMLError as exc:
        logger.warning("NVML failed while listing GPUs: %s", exc)
        return []
    finally:
        pynvml.nvmlShutdown()


def capabilities(labels: tuple[str, ...] = ()) -> pb.Capabilities:
    """This machine's capabilities as sent to peers; blocking (NVML), so call from a thread."""
    return pb.Capabilities(
        os=os_name(),
        os_version=platform.release(),
        arch=platform.machine().lower(),
        cpu_count=os.cpu_count() or 1,
        memory_total_bytes=psutil.virtual_memory().total,
        gpus=[
            pb.Gpu(
                index=g.index,
                name=g.name,
                memory_total_bytes=g.memory_total_bytes,
                memory_free_bytes=g.memory_free_bytes,
            )
            for g in gpus()
        ],
        labels=list(labels),
    )
