"""On a machine with an NVIDIA GPU: NVML sees it, a ``--gpu`` task goes to a node with it, and gpu_inference runs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import NodeProcess, wait_for
from tests.integration.tasks_helpers import pair


@pytest.mark.gpu
def test_a_gpu_task_is_routed_to_a_gpu_node_and_the_typed_job_reports_the_device(
    make_node: Callable[..., NodeProcess],
) -> None:
    if not shutil.which("nvidia-smi"):
        pytest.skip("no NVIDIA GPU on this machine")
    names = (
        subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=True
        )
        .stdout.split("\n")[0]
        .strip()
    )
    alpha, beta = make_node("alpha").start(), make_node("beta").start()
    pair(alpha, beta)
    beta.cli("allow", "alpha", "tasks")
    seen = wait_for(lambda: (alpha.peer("beta") or {}).get("gpus"), what="alpha to learn beta's GPUs")
    assert seen[0] == names, "NVML's name for the GPU, as the peer reports it"

    listed = alpha.cli("run", "--auto", "--gpu", "-v", "--", "nvidia-smi", "-L")
    assert listed.stdout.startswith("GPU 0: ") and names in listed.stdout
    assert "(scheduler: lowest load score" in listed.stderr
    print(listed.stderr.strip(), listed.stdout.strip(), sep="\n")

    job = alpha.cli("run", "--on", "beta", "--type", "gpu_inference", "--data", '{"input": [1, 2, 3]}')
    lines = job.stdout.splitlines()
    assert lines[0].startswith(f"device 0: {names}, ") and lines[1].startswith("output: [")
    print(job.stdout.strip())
    assert alpha.json("tasks")[0]["runner"] == "beta"
