"""One routing decision: the deterministic choice, or the AI advisor's pick when it names an eligible node in time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from noizylab_desktop.services.routing.advisor import ask
from noizylab_desktop.services.routing.model import Candidate, Decision, Needs, TaskSummary
from noizylab_desktop.services.routing.scheduler import choose, eligible_of
from noizylab_desktop.services.routing.settings import AdvisorSettings

logger = logging.getLogger(__name__)


async def decide(
    candidates: Sequence[Candidate],
    needs: Needs,
    summary: TaskSummary,
    settings: AdvisorSettings | None,
    *,
    require_ai: bool = False,
) -> Decision:
    """Where the task runs and why; ``TaskError`` when no node passes the hard filter.

    The advisor is asked when it is enabled, or when the caller requires an AI decision and a model is configured.
    Whatever it answers, the result is one of the eligible nodes; ``decided_by`` and ``reason`` say whose choice it
    was, and when the advisor's answer was not used, why.
    """
    fallback = choose(candidates, needs)
    settings = settings or AdvisorSettings()
    if not (settings.enabled or require_ai):
        return fallback
    if not settings.usable:
        return _unused(fallback, "no advisor is configured (set advisor_model in the [tasks] table)", asked=False)
    eligible = eligible_of(candidates, needs)
    if len(eligible) == 1 and not require_ai:
        return fallback  # nothing to advise on; the call would only add latency
    advice = await ask(settings, eligible, needs, summary)
    if advice.problem:
        logger.info("routing advisor not used: %s", advice.problem)
        return _unused(fallback, advice.problem, asked=True)
    picked = next(c for c in eligible if c.node_id == advice.node_id)
    reason = f"AI advisor ({settings.model}, {advice.elapsed_s * 1000:.0f} ms) chose {picked.name}"
    if advice.reason:
        reason += f": {advice.reason}"
    return Decision(picked.node_id, picked.name, "advisor", reason, fallback.eligible, advisor_asked=True)


def _unused(fallback: Decision, problem: str, *, asked: bool) -> Decision:
    reason = f"{fallback.reason}; the advisor's answer was not used: {problem}"
    if not asked:
        reason = f"{fallback.reason}; the advisor was not asked: {problem}"
    return replace(fallback, reason=reason, advisor_asked=asked, advisor_problem=problem)
