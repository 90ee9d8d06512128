"""Routing: a hard filter, then a deterministic score; an optional AI advisor may only pick among the eligible."""

from noizylab_desktop.services.routing.model import Candidate, Decision, GpuState, Needs, TaskSummary
from noizylab_desktop.services.routing.scheduler import choose, rejection

__all__ = ["Candidate", "Decision", "GpuState", "Needs", "TaskSummary", "choose", "rejection"]
