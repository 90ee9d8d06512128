"""On a machine with an NVIDIA GPU, the capabilities peers see come from NVML and match nvidia-smi."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from noizylab_desktop.core.capabilities import capabilities, gpus


def _nvidia_smi() -> list[tuple[str, int]]:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.rsplit(",", 1) for line in out.strip().splitlines()]
    return [(name.strip(), int(mib) * 1024 * 1024) for name, mib in rows]


def test_a_machine_without_nvml_reports_no_gpus_instead_of_failing() -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    assert gpus() == []
    assert list(capabilities().gpus) == []


@pytest.mark.gpu
def test_nvml_gpus_match_nvidia_smi() -> None:
    if not shutil.which("nvidia-smi"):
        pytest.skip("no NVIDIA GPU on this machine")
    expected = _nvidia_smi()
    found = gpus()
    assert [g.name for g in found] == [name for name, _ in expected]
    for gpu, (_, total) in zip(found, expected, strict=True):
        assert abs(gpu.memory_total_bytes - total) <= 64 * 1024 * 1024
        assert 0 <= gpu.memory_free_bytes <= gpu.memory_total_bytes
    assert [g.name for g in capabilities().gpus] == [name for name, _ in expected]
