"""An example typed job, ``gpu_inference``: finds the NVIDIA GPU through NVML and runs a tiny model on the input.

Registered through the ``noizylab.tasks`` entry point, so it shows how other packages add job types. The forward pass
is a fixed two-layer network in plain Python (no CUDA runtime is a dependency); the job's point is to run where NVML
sees a GPU and to report that device. Where there is none it fails with one line and exit status 3.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from noizylab_desktop.core.errors import TaskError
from noizylab_desktop.services.routing.model import Needs

NO_GPU_EXIT = 3


class GpuInference:
    """``{"input": [floats], "min_free_vram_mib": N}`` → the device used and the model's output."""

    name = "gpu_inference"

    def needs(self, data: Mapping[str, Any]) -> Needs:
        mib = data.get("min_free_vram_mib", 0)
        if not isinstance(mib, int) or mib < 0:
            raise TaskError("gpu_inference: min_free_vram_mib must be a whole number of MiB")
        return Needs(gpu=True, min_free_vram_bytes=mib * 2**20)

    def command(self, data: Mapping[str, Any]) -> Sequence[str]:
        values = data.get("input", [1.0, 2.0, 3.0])
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise TaskError("gpu_inference: task_data.input must be a list of numbers")
        return [sys.executable, "-m", "noizylab_desktop.services.tasks.gpu_job", json.dumps({"input": values})]


def forward(values: Sequence[float]) -> list[float]:
    """A fixed 2-layer network (tanh, then softmax over 3 classes) with deterministic weights."""
    hidden = [math.tanh(sum(v * math.sin(i + j + 1) for j, v in enumerate(values))) for i in range(8)]
    logits = [sum(h * math.cos(i * k + 1) for i, h in enumerate(hidden)) for k in range(3)]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    return [e / sum(exps) for e in exps]


def main(argv: list[str]) -> int:
    """Report the NVML device, then run the model; exit 3 with one line where there is no GPU."""
    data = json.loads(argv[0]) if argv else {}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # ImportError or NVMLError: both mean no usable NVIDIA driver here
        print(f"gpu_inference: no NVIDIA GPU on this machine (NVML: {exc})", file=sys.stderr)
        return NO_GPU_EXIT
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            print("gpu_inference: no NVIDIA GPU on this machine (NVML found none)", file=sys.stderr)
            return NO_GPU_EXIT
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        name = name.decode() if isinstance(name, bytes) else str(name)
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        print(f"device 0: {name}, {memory.free / 2**30:.1f} of {memory.total / 2**30:.1f} GiB free, driver {driver}")
    finally:
        pynvml.nvmlShutdown()
    output = forward([float(v) for v in data.get("input", [])])
    print("output: " + json.dumps([round(p, 6) for p in output]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
