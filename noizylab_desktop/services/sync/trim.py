"""Freed heap handed back to the OS once sync goes quiet (glibc's ``malloc_trim``; nothing elsewhere).

A pass over a large share allocates tens of MB (three listings, the plan, batches of file data) and frees them at
its end, but glibc keeps freed memory for reuse: a node that synced 10,000 files stayed ~50 MB larger while idle,
and ``malloc_trim`` gave back about 40% of that. ``Trimmer.soon`` is called at the end of each pass and of each
large served call; the trim runs in a worker thread ``QUIET_S`` after the last of them.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from collections.abc import Callable

QUIET_S = 2.0


def _malloc_trim() -> Callable[[], object] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already uses
    except OSError:
        return None
    fn = getattr(libc, "malloc_trim", None)  # glibc's; musl has none
    if fn is None:
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: fn(0)


TRIM = _malloc_trim()


class Trimmer:
    """Runs ``trim`` once ``quiet_s`` after the last ``soon()`` (from the loop); does nothing where there is none."""

    def __init__(self, trim: Callable[[], object] | None = TRIM, quiet_s: float = QUIET_S) -> None:
        self.trim = trim
        self.quiet_s = quiet_s
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None

    def soon(self) -> None:
        if self.trim is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.quiet_s, self._run)

    def _run(self) -> None:
        self._timer = None
        if self.trim is not None and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(asyncio.to_thread(self.trim))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
