"""Screen capture behind ``ScreenSource``: mss on every desktop OS; one source per thread (X11 needs that)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.regions import Rect


@dataclass(frozen=True)
class MonitorInfo:
    """One monitor in desktop coordinates; ``index`` is 1-based as ``--monitor N``."""

    index: int
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class Grab:
    """One captured picture: BGRA rows, even-sized (H.264 4:2:0 needs that)."""

    width: int
    height: int
    bgra: bytes | bytearray
    captured_at: float
    capture_ms: float
    compare_ms: float = 0.0  # the host's comparison with the grab before
    monitor: int = 0  # the index of the monitor it shows
    rects: tuple[Rect, ...] | None = None  # what changed since the grab before (None: all of it, or not known)


class ScreenSource(Protocol):
    """Where pictures of the screen come from."""

    def monitors(self) -> list[MonitorInfo]:
        """Every monitor, in order."""

    def grab(self, monitor: MonitorInfo) -> Grab:
        """The monitor's picture now."""

    def close(self) -> None:
        """Release the connection to the display server."""


class MssSource:
    """mss: XGetImage/XShm on X11, CoreGraphics on macOS, GDI on Windows; create it in the thread that uses it."""

    def __init__(self) -> None:
        import mss

        try:
            self._mss = mss.MSS()
        except mss.ScreenShotError as exc:
            raise DisplayError(f"cannot open the screen for capture: {exc}; is a desktop session running?") from exc

    def monitors(self) -> list[MonitorInfo]:
        found = self._mss.monitors[1:] or self._mss.monitors[:1]
        return [
            MonitorInfo(i, int(m["left"]), int(m["top"]), int(m["width"]), int(m["height"]))
            for i, m in enumerate(found, 1)
        ]

    def grab(self, monitor: MonitorInfo) -> Grab:
        region = {
            "left": monitor.left,
            "top": monitor.top,
            "width": monitor.width - monitor.width % 2,
            "height": monitor.height - monitor.height % 2,
        }
        started = time.perf_counter()
        captured_at = time.time()
        shot = self._mss.grab(region)
        capture_ms = (time.perf_counter() - started) * 1000
        return Grab(shot.width, shot.height, shot.raw, captured_at, capture_ms, monitor=monitor.index)

    def close(self) -> None:
        self._mss.close()


def pick(monitors: list[MonitorInfo], index: int) -> MonitorInfo:
    """Monitor ``index`` (0: the first), or a one-line error naming the ones there are."""
    if not monitors:
        raise DisplayError("this machine reports no monitor to capture")
    if index == 0:
        return monitors[0]
    for monitor in monitors:
        if monitor.index == index:
            return monitor
    raise DisplayError(f"there is no monitor {index}: this machine has monitors 1 to {len(monitors)}")


def is_black(bgra: bytes | bytearray) -> bool:
    """True when every pixel is pure black (what a capture without permission gives on macOS or Wayland).

    Plain byte slicing, not numpy: the display host stays free of numpy, whose Windows builds from 2.1 on call
    ucrtbase's ``crealf`` as they load, which Wine lacks (the node died under the Windows tier).
    """

    def colour_in(step: int) -> bool:
        # Every ``step``-th byte from each of the blue, green and red offsets (alpha is left out); strip is a C loop.
        return any(bgra[offset::step].strip(b"\0") for offset in range(3))

    # A sparse look first (every 61st pixel) keeps this cheap for ordinary screens; then one memcmp against black
    # with the first pixel's alpha (the usual black capture); the full check only when the alpha varies.
    if colour_in(4 * 61):
        return False
    pixel = bytes(bgra[:4])
    return bgra == pixel * (len(bgra) // 4) or not colour_in(4)
