"""Start writing a large incoming file to disk while it arrives, so its final ``fdatasync`` has little left to do.

On Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` queues the range for writeback and returns at once: the disk
writes while the network delivers, and the writer never waits for dirty-page throttling at the end. Elsewhere an
``fdatasync`` every 64 MiB does the same job, blocking the writing thread while it runs. Durability still comes
from the final ``fdatasync`` before the rename; this only moves the work earlier.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

RANGE_BYTES = 8 * 1024 * 1024  # queue writeback this often (Linux): small enough that the disk never sits idle
SYNC_BYTES = 64 * 1024 * 1024  # the portable fallback blocks, so it runs less often
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(fd, offset, n, WRITE)`` from the C library, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start(fd: int, offset: int, n: int) -> None:
        if call(fd, offset, n, _SYNC_FILE_RANGE_WRITE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return start


_START = _sync_file_range()


class Writeback:
    """Tracks what was written to one file descriptor and starts writing it back every few MiB."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._start = _START
        self._pending = 0  # bytes written since the last writeback
        self._low = -1  # lowest offset written since then (chunks may come out of order on a resume)
        self._high = 0

    def wrote(self, offset: int, n: int) -> None:
        """``n`` bytes were written at ``offset``; blocking for a moment only on the portable fallback."""
        self._low = offset if self._low < 0 else min(self._low, offset)
        self._high = max(self._high, offset + n)
        self._pending += n
        if self._start is not None and self._pending >= RANGE_BYTES:
            try:
                self._start(self.fd, self._low, self._high - self._low)
            except OSError as exc:  # e.g. a filesystem without it: fall back to the blocking flush
                logger.debug("sync_file_range failed (%s); using fdatasync", exc)
                self._start = None
            self._reset()
        elif self._start is None and self._pending >= SYNC_BYTES:
            os.fdatasync(self.fd)
            self._reset()

    def _reset(self) -> None:
        self._pending, self._low, self._high = 0, -1, 0
