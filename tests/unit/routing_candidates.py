"""Candidates for the routing tests: a small grid of nodes with known loads, GPUs and labels."""

from __future__ import annotations

from dataclasses import replace

from noizylab_desktop.services.routing import Candidate, GpuState

GIB = 2**30


def node(name: str, **changes: object) -> Candidate:
    """A healthy, idle, online Linux node that allows tasks; ``changes`` override any field."""
    base = Candidate(
        node_id=f"ID-{name.upper()}",
        name=name,
        online=True,
        is_self=False,
        os="linux",
        cpu_count=8,
        memory_total_bytes=32 * GIB,
        memory_available_bytes=16 * GIB,
        gpus=(),
        labels=(),
        load=0.2,
        queue_length=0,
        rtt_ms=1.0,
        allows_tasks=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def gpu(free_gib: float, total_gib: float = 24.0, name: str = "NVIDIA GeForce RTX 4090") -> GpuState:
    """One GPU with ``free_gib`` GiB free."""
    return GpuState(name, int(total_gib * GIB), int(free_gib * GIB))
