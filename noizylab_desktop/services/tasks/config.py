"""The ``[tasks]`` table of a node's config, parsed and checked in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.services.routing.settings import advisor_keys


@dataclass(frozen=True)
class TasksConfig:
    """How many tasks run at once, how long a cancel waits before killing, how much history and output to keep."""

    max_parallel: int = max(2, os.cpu_count() or 1)
    grace_s: float = 0.3
    history_limit: int = 5000
    tail_bytes: int = 4096
    offer_timeout_s: float = 0.5

    @classmethod
    def parse(cls, table: Mapping[str, Any]) -> TasksConfig:
        """The config from ``[tasks]``; unknown keys and bad values get a one-line ``ConfigError``."""
        # The routing advisor reads its own keys from the same table.
        known = set(cls.__dataclass_fields__) | set(advisor_keys())
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"unknown setting tasks.{unknown[0]}: use one of {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, low in (("max_parallel", 1), ("history_limit", 10), ("tail_bytes", 0)):
            if key in table:
                value = table[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise ConfigError(f"tasks.{key} must be a whole number of at least {low}, not {value!r}")
                values[key] = value
        for key, top in (("grace_s", 10.0), ("offer_timeout_s", 10.0)):
            if key in table:
                value = table[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= top:
                    raise ConfigError(f"tasks.{key} must be seconds between 0 and {top:g}, not {value!r}")
                values[key] = float(value)
        return cls(**values)
