"""Routing: a hard filter, then a deterministic score; an optional AI advisor may only pick among the eligible."""

from noizylab_desktop.services.routing.advisor import Completion, complete, warm_up
from noizylab_desktop.services.routing.decide import decide
from noizylab_desktop.services.routing.model import Candidate, Decision, GpuState, Needs, TaskSummary
from noizylab_desktop.services.routing.scheduler import choose, rank, rejection
from noizylab_desktop.services.routing.settings import (
    API_KEY_NAME,
    AdvisorSettings,
    load_advisor_settings,
)

__all__ = [
    "API_KEY_NAME",
    "AdvisorSettings",
    "Candidate",
    "Completion",
    "Decision",
    "GpuState",
    "Needs",
    "TaskSummary",
    "choose",
    "complete",
    "decide",
    "load_advisor_settings",
    "rank",
    "rejection",
    "warm_up",
]
