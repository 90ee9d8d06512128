"""The parts that keep an idle node quiet: how long a look counts, and the process table walked only when due."""

from __future__ import annotations

from typing import Any

import psutil
import pytest

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.metrics import system
from noizylab_desktop.services.metrics.cluster import WATCHING, sent_watching
from noizylab_desktop.services.metrics.demand import Demand
from noizylab_desktop.services.metrics.rpc import RpcMetrics
from noizylab_desktop.services.metrics.settings import MetricsSettings


def test_a_look_counts_for_its_window_and_says_when_it_starts_one() -> None:
    now = [100.0]
    demand = Demand(30.0, clock=lambda: now[0])
    assert not demand.watching()
    assert demand.look(), "the first look after a quiet spell"
    now[0] += 29.0
    assert demand.watching()
    assert not demand.look(), "a look while watching only extends the window"
    now[0] += 29.9
    assert demand.watching()
    now[0] += 0.2
    assert not demand.watching()
    assert demand.look()


def test_the_idle_pace_settings_have_defaults_and_one_line_errors() -> None:
    settings = parse_section(MetricsSettings, {})
    assert (settings.peer_interval_s, settings.watch_s) == (15.0, 30.0)
    with pytest.raises(ConfigError, match=r"^metrics\.watch_s must be a number of seconds above 0, not 0$"):
        parse_section(MetricsSettings, {"watch_s": 0})


def test_pulls_say_when_someone_looks_at_the_asking_node() -> None:
    assert sent_watching(WATCHING)
    assert sent_watching((("user-agent", "grpc-python"), *WATCHING))
    assert not sent_watching((("user-agent", "grpc-python"),))
    assert not sent_watching(None)


def test_the_process_table_is_walked_at_the_pace_asked_and_at_once_after_walk_soon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walks = [0]
    real = psutil.process_iter

    def counted(*args: Any, **kwargs: Any) -> Any:
        walks[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(system.psutil, "process_iter", counted)
    sampler = system.SystemSampler(process_interval_s=10.0, top=3)
    assert walks[0] == 1, "the first walk primes the per-process CPU readings"
    first = mpb.NodeMetrics()
    sampler.sample(first, process_interval_s=3600.0)
    assert walks[0] == 2 and 1 <= len(first.top_processes) <= 3
    for _ in range(3):
        again = mpb.NodeMetrics()
        sampler.sample(again, process_interval_s=3600.0)
        assert list(again.top_processes) == list(first.top_processes), "the last list is shown between walks"
    assert walks[0] == 2
    sampler.walk_soon()
    sampler.sample(mpb.NodeMetrics(), process_interval_s=3600.0)
    assert walks[0] == 3


def test_rpc_figures_are_made_again_only_for_methods_called_since() -> None:
    rpc = RpcMetrics()
    rpc.record("/a.A/Quiet", 0.002, "OK")
    rpc.record("/a.A/Busy", 0.002, "OK")
    before = {(f.name, f.labels["method"]): f for f in rpc.figures()}
    rpc.record("/a.A/Busy", 0.2, "OK")
    after = {(f.name, f.labels["method"]): f for f in rpc.figures()}
    handling, handled = "noizylab_rpc_server_handling_seconds", "noizylab_rpc_server_handled_total"
    assert after[(handling, "/a.A/Quiet")] is before[(handling, "/a.A/Quiet")]
    assert after[(handled, "/a.A/Quiet")] is before[(handled, "/a.A/Quiet")]
    busy = after[(handling, "/a.A/Busy")]
    assert busy.count == 2.0 and busy.value == pytest.approx(0.202) and busy.buckets[-1] == (float("inf"), 2.0)
    assert after[(handled, "/a.A/Busy")].value == 2.0


def test_readings_the_os_refuses_are_left_out_and_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What the Windows tier met: Wine refuses CPU times (OSError, WinError 1); Windows with its performance counters
    # disabled refuses swap (psutil raises RuntimeError). Neither may stop the node that samples.
    def no_cpu_times(percpu: bool = False) -> Any:
        raise OSError(22, "Invalid function")

    def no_swap() -> Any:
        raise RuntimeError("PdhAddEnglishCounterW failed. Performance counters may be disabled.")

    monkeypatch.setattr(system.psutil, "cpu_times", no_cpu_times)
    monkeypatch.setattr(system.psutil, "swap_memory", no_swap)
    sampler = system.SystemSampler(top=0)
    for _ in range(3):
        sample = mpb.NodeMetrics()
        sampler.sample(sample)
        assert sample.memory_total_bytes > 0 and sample.swap_total_bytes == 0 and not sample.cpu_seconds
        assert sample.cpu_count >= 1
    refused = [r.getMessage() for r in caplog.records if "does not give its" in r.getMessage()]
    assert refused == [
        "this machine does not give its CPU times ([Errno 22] Invalid function): left out of the metrics",
        "this machine does not give its swap (PdhAddEnglishCounterW failed. Performance counters may be disabled.): "
        "left out of the metrics",
    ]
