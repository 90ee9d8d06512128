"""The ``[metrics]`` table of the node's config, parsed and validated once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from noizylab_desktop.core.errors import ConfigError


@dataclass(frozen=True)
class MetricsSettings:
    """How often to sample, when to warn, and whether ``/metrics`` needs a token."""

    interval_s: float = 1.0
    # Walking every process costs far more than the rest of a sample; the top list changes slowly anyway.
    process_interval_s: float = 10.0
    top_processes: int = 5
    history_s: int = 3600
    peer_timeout_s: float = 2.0
    # Peers are pulled every sample only while someone looks (the dashboard, the JSON API, `noizylab metrics`, in
    # the last watch_s seconds); otherwise every peer_interval_s: a pull a second was half of an idle node's CPU.
    peer_interval_s: float = 15.0
    watch_s: float = 30.0
    disk_warn_ratio: float = 0.9
    gpu_hot_celsius: float = 85.0
    public_metrics: bool = False  # True lets Prometheus scrape /metrics without a bearer token
    max_series: int = 2000

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> MetricsSettings:
        """Settings from the raw table; a one-line ConfigError names the bad key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise ConfigError(f"[metrics] has no setting {key!r}: known are {', '.join(sorted(known))}")
            default = getattr(cls(), key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"[metrics] {key} must be true or false, not {value!r}")
            elif isinstance(default, int):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"[metrics] {key} must be a whole number of at least 0, not {value!r}")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"[metrics] {key} must be a number above 0, not {value!r}")
            values[key] = float(value) if isinstance(default, float) else value
        settings = cls(**values)
        if not 0 < settings.disk_warn_ratio <= 1:
            raise ConfigError(
                f"[metrics] disk_warn_ratio must be above 0 and at most 1, not {settings.disk_warn_ratio}"
            )
        if settings.interval_s < 0.1:
            raise ConfigError(f"[metrics] interval_s must be at least 0.1, not {settings.interval_s}")
        return settings
