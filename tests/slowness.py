"""How much slower than a quiet machine this one runs right now, so that test deadlines stretch on a busy one.

A deadline in a test says how long something may take on a machine that gives the test a whole core; on a busy
machine (CI beside other jobs) the same work takes longer, and the deadline should say so rather than fail. The
factor is measured, not guessed: a short CPU-bound loop's wall time over the CPU time it got is the share of a core
this process is given (2.0: half a core). It is measured again after a while (load changes over a long session),
never below 1, at most MAX, and ``NOIZYLAB_TEST_SLOWNESS`` fixes it (e.g. 1 to check the bounds as specified).
"""

from __future__ import annotations

import os
import threading
import time

MAX = 4.0
LOOP_CPU_S = 0.05  # the CPU time measured each time: short enough to cost nothing, long enough to span time slices
REMEASURE_S = 30.0

_lock = threading.Lock()
_measured: tuple[float, float] | None = None  # (when, factor)


def _measure() -> float:
    """Wall time over CPU time of a busy loop running for ``LOOP_CPU_S`` of CPU time."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    while time.thread_time() - cpu0 < LOOP_CPU_S:
        sum(range(1000))
    return (time.perf_counter() - wall0) / max(time.thread_time() - cpu0, 1e-6)


def factor() -> float:
    """The current slowness factor, between 1 and ``MAX``."""
    global _measured
    fixed = os.environ.get("NOIZYLAB_TEST_SLOWNESS")
    if fixed:
        return max(1.0, float(fixed))
    with _lock:
        now = time.monotonic()
        if _measured is None or now - _measured[0] > REMEASURE_S:
            _measured = (now, min(MAX, max(1.0, _measure())))
        return _measured[1]


def scaled(seconds: float) -> float:
    """``seconds`` as a deadline on this machine now: longer by the slowness factor."""
    return seconds * factor()
