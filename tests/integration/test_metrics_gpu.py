"""GPU figures come from NVML (never nvidia-smi); on a GPU machine they agree with what nvidia-smi reports."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.services.metrics.gpu import GpuSampler
from noizylab_desktop.services.metrics.prom import gpu_families

FIELDS = "index,name,uuid,memory.total,memory.free,temperature.gpu,power.draw,utilization.gpu"
MIB = 1024 * 1024


def _nvidia_smi() -> list[dict[str, str]]:
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keys = FIELDS.split(",")
    return [dict(zip(keys, (v.strip() for v in line.split(",")), strict=True)) for line in out.strip().splitlines()]


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:  # "[N/A]" or "[Not Supported]"
        return None


def test_without_nvml_there_are_no_gpu_figures_and_no_failure() -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    sampler = GpuSampler()
    into = mpb.NodeMetrics()
    sampler.sample(into)
    sampler.close()
    assert not sampler.available and list(into.gpus) == []
    assert list(gpu_families(into.gpus)) == []


@pytest.mark.gpu
def test_nvml_figures_match_nvidia_smi() -> None:
    if not shutil.which("nvidia-smi"):
        pytest.skip("no NVIDIA GPU on this machine")
    sampler = GpuSampler()
    try:
        into = mpb.NodeMetrics()
        sampler.sample(into)
        expected = _nvidia_smi()
    finally:
        sampler.close()
    assert sampler.available
    assert [(g.index, g.name, g.uuid) for g in into.gpus] == [(int(e["index"]), e["name"], e["uuid"]) for e in expected]
    for gpu, smi in zip(into.gpus, expected, strict=True):
        assert abs(gpu.memory_total_bytes - float(smi["memory.total"]) * MIB) <= 64 * MIB
        # Newer nvidia-smi leaves the driver's reservation out of memory.used; total - free counts it, as NVML does.
        smi_used = (float(smi["memory.total"]) - float(smi["memory.free"])) * MIB
        assert abs(gpu.memory_used_bytes - smi_used) <= 256 * MIB
        assert 0 <= gpu.memory_used_bytes <= gpu.memory_total_bytes
        assert abs(gpu.temperature_celsius - float(smi["temperature.gpu"])) <= 5
        assert 0.0 <= gpu.utilization_ratio <= 1.0
        assert 0.0 <= gpu.encoder_utilization_ratio <= 1.0 and 0.0 <= gpu.decoder_utilization_ratio <= 1.0
        power = _number(smi["power.draw"])
        if power is not None:
            assert abs(gpu.power_watts - power) <= max(30.0, 0.25 * power)
    families = {f.name for f in gpu_families(into.gpus)}
    assert {"noizylab_gpu_temperature_celsius", "noizylab_gpu_power_watts", "noizylab_gpu"} <= families
