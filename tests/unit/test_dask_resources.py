"""What a Dask worker advertises: GPU=N from the GPUs NVML found, nothing GPU-like on a machine without one, and the
``[dask] resources`` a person adds."""

from __future__ import annotations

import shutil

import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.capabilities import capabilities
from noizylab_desktop.services.dask.member import worker_resources


def caps(gpus: int) -> pb.Capabilities:
    return pb.Capabilities(gpus=[pb.Gpu(index=i, name="NVIDIA Test") for i in range(gpus)])


def test_a_machine_with_one_nvidia_gpu_offers_gpu_1_and_one_with_two_offers_2() -> None:
    assert worker_resources(caps(1), {}) == {"GPU": 1.0}
    assert worker_resources(caps(2), {}) == {"GPU": 2.0}


def test_a_machine_without_a_gpu_offers_no_gpu_resource_so_gpu_tasks_never_land_there() -> None:
    assert worker_resources(caps(0), {}) == {}


def test_configured_resources_are_added_and_may_override_the_found_ones() -> None:
    assert worker_resources(caps(0), {"GPU": 1.0, "BIGMEM": 2.0}) == {"GPU": 1.0, "BIGMEM": 2.0}
    assert worker_resources(caps(2), {"GPU": 1.0}) == {"GPU": 1.0}


def test_this_machine_without_nvml_advertises_no_gpu() -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    assert worker_resources(capabilities(), {}) == {}
