"""The deterministic scheduler: drop every node that cannot run the task, then take the best score.

The score is ``load + 0.5 * queue_length + rtt_ms / 100`` (lower is better): one queued task weighs as much as half
a CPU's worth of load, and 100 ms of distance as a whole one. Equal scores go to this node first (no network hop),
then, for a GPU task, to the node with the most free GPU memory, then by name, then by node ID, so the same inputs
always give the same node.
"""

from __future__ import annotations

from collections.abc import Sequence

from noizylab_desktop.core.errors import TaskError
from noizylab_desktop.services.routing.model import Candidate, Decision, Needs


def rejection(candidate: Candidate, needs: Needs) -> str:
    """Why ``candidate`` cannot run a task with ``needs`` ("" when it can)."""
    if not candidate.online:
        return "offline"
    if not candidate.allows_tasks:
        return "does not allow tasks from this node"
    if needs.os and candidate.os != needs.os:
        return f"runs {candidate.os or 'an unknown OS'}, not {needs.os}"
    if (needs.gpu or needs.min_free_vram_bytes) and not candidate.gpus:
        return "has no NVIDIA GPU"
    if needs.min_free_vram_bytes and free_vram(candidate) < needs.min_free_vram_bytes:
        return f"has less than {needs.min_free_vram_bytes / 2**30:.1f} GiB of free GPU memory"
    if needs.min_memory_bytes and candidate.memory_available_bytes < needs.min_memory_bytes:
        return f"has less than {needs.min_memory_bytes / 2**30:.1f} GiB of free memory"
    missing = [label for label in needs.labels if label not in candidate.labels]
    if missing:
        return f"lacks the label{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return ""


def free_vram(candidate: Candidate) -> int:
    """The free memory of the candidate's emptiest GPU (a task runs on one GPU)."""
    return max((g.memory_free_bytes for g in candidate.gpus), default=0)


def score(candidate: Candidate) -> float:
    """Lower is better: load per CPU, then waiting work, then distance (see the module docstring)."""
    return candidate.load + 0.5 * candidate.queue_length + candidate.rtt_ms / 100.0


def rank(eligible: Sequence[Candidate], needs: Needs) -> list[Candidate]:
    """The eligible nodes, best first, in a fully deterministic order."""
    wants_gpu = needs.gpu or needs.min_free_vram_bytes > 0
    return sorted(
        eligible,
        key=lambda c: (round(score(c), 6), not c.is_self, -free_vram(c) if wants_gpu else 0, c.name, c.node_id),
    )


def eligible_of(candidates: Sequence[Candidate], needs: Needs) -> list[Candidate]:
    """The candidates that pass the hard filter; ``TaskError`` naming each refusal when none does."""
    eligible = [c for c in candidates if not rejection(c, needs)]
    if not eligible:
        why = "; ".join(f"{c.name}: {rejection(c, needs)}" for c in candidates) or "no nodes known"
        raise TaskError(f"no node can run this task ({why})")
    return eligible


def choose(candidates: Sequence[Candidate], needs: Needs) -> Decision:
    """The deterministic choice among the eligible nodes, with its reason; ``TaskError`` when none fits."""
    eligible = eligible_of(candidates, needs)
    best = rank(eligible, needs)[0]
    reason = (
        f"lowest load score {score(best):.2f} (load {best.load:.2f}, {best.queue_length} queued, "
        f"{best.rtt_ms:.1f} ms away) of {len(eligible)} eligible"
    )
    return Decision(best.node_id, best.name, "scheduler", reason, tuple(c.name for c in eligible))
