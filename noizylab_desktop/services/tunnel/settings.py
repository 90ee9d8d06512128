"""The ``[tunnel]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting

SECTION = "tunnel"


@section(SECTION)
@dataclass(frozen=True)
class TunnelSettings:
    """Keepalive, how long a new connection waits for an absent peer, and the size of one frame's data."""

    ping_s: float = setting(5.0, low=0.1, high=60, unit="seconds")
    dead_s: float = setting(15.0, low=0.3, high=600, unit="seconds")
    backoff_min_s: float = setting(1.0, low=0.01, high=60, unit="seconds")
    backoff_max_s: float = setting(30.0, low=0.01, high=600, unit="seconds")
    wait_s: float = setting(60.0, low=0.1, high=3600, unit="seconds")
    chunk_bytes: int = setting(1024 * 1024, low=4096, high=3 * 1024 * 1024, unit="bytes")
