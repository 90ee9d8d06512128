"""The ``[metrics]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting


@section("metrics")
@dataclass(frozen=True)
class MetricsSettings:
    """How often to sample, when to warn, and whether ``/metrics`` needs a token."""

    interval_s: float = setting(1.0, low=0.1, unit="seconds")
    # Walking every process costs far more than the rest of a sample; the top list changes slowly anyway.
    process_interval_s: float = setting(10.0, above=0, unit="seconds")
    top_processes: int = setting(5, low=0)
    history_s: int = setting(3600, low=0, unit="seconds")
    peer_timeout_s: float = setting(2.0, above=0, unit="seconds")
    # Peers are pulled every sample only while someone looks (the dashboard, the JSON API, `noizylab metrics`, in
    # the last watch_s seconds); otherwise every peer_interval_s: a pull a second was half of an idle node's CPU.
    peer_interval_s: float = setting(15.0, above=0, unit="seconds")
    watch_s: float = setting(30.0, above=0, unit="seconds")
    disk_warn_ratio: float = setting(0.9, above=0, high=1)
    gpu_hot_celsius: float = setting(85.0, above=0, unit="degrees Celsius")
    public_metrics: bool = setting(False)  # True lets Prometheus scrape /metrics without a bearer token
    max_series: int = setting(2000, low=0)
    # A request's line and headers must all arrive this soon after its first byte: a client that drips them holds
    # one of the HTTP server's threads, so it is closed.
    header_timeout_s: float = setting(10.0, above=0, high=300, unit="seconds")
