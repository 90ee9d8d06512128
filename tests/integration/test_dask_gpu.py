"""On a machine with an NVIDIA GPU: the node's Dask worker advertises GPU=N from NVML (no configured resources), and
a task that asks for a GPU runs in that worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

from noizylab_desktop.grid import Grid
from tests.conftest import NodeProcess, within
from tests.integration.dask_support import dask_children, workers

pytest.importorskip("distributed")


@pytest.mark.gpu
def test_a_gpu_machine_s_worker_advertises_its_nvml_gpus_and_runs_gpu_tasks(
    make_node: Callable[..., NodeProcess],
) -> None:
    if not shutil.which("nvidia-smi"):
        pytest.skip("no NVIDIA GPU on this machine")
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    count = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
    assert count >= 1
    gpu_box = make_node("gpubox").start()  # no [dask] resources: GPU comes from NVML alone
    gpu_box.cli("dask", "up")
    assert workers(gpu_box)["gpubox"]["resources"] == {"GPU": float(count)}

    async def pinned() -> int:
        async with Grid(gpu_box.home) as grid:
            client = await within(grid.dask_client(), 30, "a client")
            try:
                ran_in: int = await within(client.submit(os.getpid, resources={"GPU": 1}, pure=False), 30, "GPU task")
            finally:
                await client.close()
        return ran_in

    assert asyncio.run(pinned()) in {p.pid for p in dask_children(gpu_box)}
    gpu_box.cli("dask", "down")
