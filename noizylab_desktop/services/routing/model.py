"""The typed inputs and output of routing: what a task needs, what each node offers, and the decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Needs:
    """What a task requires of the machine that runs it; the defaults require nothing."""

    gpu: bool = False
    min_free_vram_bytes: int = 0
    min_memory_bytes: int = 0
    os: str = ""  # "linux", "darwin" or "windows"; "" for any
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuState:
    """One NVIDIA GPU as NVML reported it recently."""

    name: str
    memory_total_bytes: int
    memory_free_bytes: int


@dataclass(frozen=True)
class Candidate:
    """One node that might run the task, as the asking node knows it now."""

    node_id: str
    name: str
    online: bool
    is_self: bool
    os: str
    cpu_count: int
    memory_total_bytes: int
    memory_available_bytes: int
    gpus: tuple[GpuState, ...]
    labels: tuple[str, ...]
    load: float  # 1-minute load average per CPU
    queue_length: int  # tasks running or waiting there
    rtt_ms: float  # 0 for this node itself
    allows_tasks: bool  # whether that node lets the asking node run tasks on it


@dataclass(frozen=True)
class TaskSummary:
    """The task as the advisor is shown it: its kind and a short, shortened text."""

    kind: str  # "command" or a typed job's task_type
    text: str
    timeout_s: float


@dataclass(frozen=True)
class Decision:
    """Where a task runs, who decided (the deterministic scheduler, the AI advisor, or the user) and why."""

    node_id: str
    name: str
    decided_by: Literal["scheduler", "advisor", "user"]
    reason: str
    eligible: tuple[str, ...]  # names of the nodes that passed the hard filter
    # Whether the AI advisor was asked, and if its answer was not used, why ("" when it was used or not asked).
    advisor_asked: bool = False
    advisor_problem: str = ""
