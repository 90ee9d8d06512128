"""The ``[tasks]`` table of a node's config, declared for ``parse_section``; the routing advisor shares it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting
from noizylab_desktop.services.routing.settings import AdvisorSettings


# The advisor reads its advisor_* keys from this table; a key neither declares is refused when the tasks feature
# parses it.
@section("tasks", shared_with=(AdvisorSettings,))
@dataclass(frozen=True)
class TasksSettings:
    """How many tasks run at once, how long a cancel waits before killing, how much history and output to keep."""

    max_parallel: int = setting(max(2, os.cpu_count() or 1), low=1)
    grace_s: float = setting(0.3, above=0, high=10, unit="seconds")
    history_limit: int = setting(5000, low=10)
    tail_bytes: int = setting(4096, low=0, unit="bytes")
    offer_timeout_s: float = setting(0.5, above=0, high=10, unit="seconds")
