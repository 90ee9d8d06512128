"""Which parts of the screen changed between two grabs, as a few even-aligned rectangles.

The encoder converts only these parts into the picture it keeps (at 4K a full BGRA → YUV 4:2:0 conversion costs
about 20 ms of CPU; a moving 80-pixel band and a counter, 1 ms). An X11 damage report says *that* something was
drawn, and a window that repaints itself whole reports the whole window, so the rectangles come from the pixels:
two grabs are compared eight bytes (two pixels) at a time, then the changed columns are grouped into runs, and
each run's changed rows into runs. Nearby runs merge; too many collapse into their bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GAP = 16  # runs closer than this (in two-pixel columns, or rows) merge: fewer, larger conversions
MAX_RUNS = 8  # more runs than this along one axis collapse into one (scattered changes: one conversion)
MAX_RECTS = 32  # a mailbox merging more than this gives up and converts the whole picture


@dataclass(frozen=True)
class Rect:
    """A part of the picture in pixels; x, y, width and height are even (H.264 4:2:0 chroma is 2×2)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


def _runs(flags: Any, limit: int) -> list[tuple[int, int]]:
    """Half-open runs of True in a 1-D bool array, merged across gaps under ``GAP``; one run if there are too many."""
    import numpy as np

    edges = np.flatnonzero(np.diff(np.concatenate(([False], flags, [False])).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    runs: list[tuple[int, int]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if runs and start - runs[-1][1] < GAP:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    if len(runs) > limit:
        runs = [(runs[0][0], runs[-1][1])]
    return runs


def changed(
    previous: bytes | bytearray, current: bytes | bytearray, width: int, height: int
) -> tuple[Rect, ...] | None:
    """The parts of ``current`` that differ from ``previous`` (both BGRA, ``width`` × ``height``); None: all of it."""
    import numpy as np

    if previous == current:  # a memcmp: the common case of a still screen costs no more than before
        return ()
    if width % 2 or height % 2 or len(previous) != len(current) or len(current) != width * height * 4:
        return None  # not two grabs of one even-sized picture: nothing to compare part by part
    # Two pixels per uint64: ``width`` is even, so no pair straddles a row.
    before = np.frombuffer(previous, np.uint64).reshape(height, width // 2)
    after = np.frombuffer(current, np.uint64).reshape(height, width // 2)
    differs = before != after
    rects = []
    for c0, c1 in _runs(differs.any(axis=0), MAX_RUNS):
        for r0, r1 in _runs(differs[:, c0:c1].any(axis=1), MAX_RUNS):
            y0, y1 = r0 - r0 % 2, min(height, r1 + r1 % 2)
            rects.append(Rect(2 * c0, y0, 2 * (c1 - c0), y1 - y0))
    return tuple(rects)


def union(older: tuple[Rect, ...] | None, newer: tuple[Rect, ...] | None) -> tuple[Rect, ...] | None:
    """What changed across two grabs of which the first was never encoded (None: all of it)."""
    if older is None or newer is None or len(older) + len(newer) > MAX_RECTS:
        return None
    return older + newer
