"""NVIDIA GPUs through NVML (nvidia-ml-py), never by running nvidia-smi; nothing at all where there is no driver."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb

logger = logging.getLogger(__name__)


class GpuSampler:
    """Reads every GPU's utilisation, memory, temperature, power and codec use; ``available`` says if NVML loaded."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._nvml = pynvml
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ... all mean: no GPU figures
            logger.debug("no NVML GPUs here: %s", exc)

    @property
    def available(self) -> bool:
        return bool(self._handles)

    def sample(self, into: mpb.NodeMetrics) -> None:
        """Fill ``into.gpus``; a figure one GPU cannot give stays 0."""
        with self._lock:
            for index, handle in enumerate(self._handles):
                into.gpus.append(self._one(index, handle))

    def _one(self, index: int, handle: Any) -> mpb.GpuUsage:
        nv = self._nvml
        gpu = mpb.GpuUsage(index=index)
        reads: tuple[Callable[[], object], ...] = (
            lambda: setattr(gpu, "name", _text(nv.nvmlDeviceGetName(handle))),
            lambda: setattr(gpu, "uuid", _text(nv.nvmlDeviceGetUUID(handle))),
            lambda: setattr(gpu, "utilization_ratio", nv.nvmlDeviceGetUtilizationRates(handle).gpu / 100),
            lambda: _memory(gpu, nv.nvmlDeviceGetMemoryInfo(handle)),
            lambda: setattr(
                gpu, "temperature_celsius", float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
            ),
            lambda: setattr(gpu, "power_watts", nv.nvmlDeviceGetPowerUsage(handle) / 1000),
            lambda: setattr(gpu, "encoder_utilization_ratio", nv.nvmlDeviceGetEncoderUtilization(handle)[0] / 100),
            lambda: setattr(gpu, "decoder_utilization_ratio", nv.nvmlDeviceGetDecoderUtilization(handle)[0] / 100),
        )
        for read in reads:
            try:
                read()
            except nv.NVMLError as exc:  # NOT_SUPPORTED on some boards (power on laptops, codecs on old cards)
                logger.debug("GPU %d: %s", index, exc)
        return gpu

    def close(self) -> None:
        """Release NVML; idempotent."""
        with self._lock:
            if self._nvml is not None and self._handles:
                try:
                    self._nvml.nvmlShutdown()
                except Exception as exc:
                    logger.debug("nvmlShutdown: %s", exc)
            self._handles = []


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _memory(gpu: mpb.GpuUsage, info: Any) -> None:
    gpu.memory_used_bytes = float(info.used)
    gpu.memory_total_bytes = float(info.total)
