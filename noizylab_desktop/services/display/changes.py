"""Being told when the screen changes, so a change is grabbed at once instead of at the next capture tick.

On X11 the DAMAGE extension reports drawing anywhere on the root window about a millisecond after it happens; a
fixed 60 Hz tick makes a change wait 8 ms on average (up to 16.7 ms) before it is even grabbed. Elsewhere there is
no watch and the host keeps its tick.
"""

from __future__ import annotations

import logging
import os
import select
import sys
from typing import Any, Protocol

from noizylab_desktop.services.display.capture import MssSource, ScreenSource

logger = logging.getLogger(__name__)


class ChangeWatch(Protocol):
    """Says whether the screen changed."""

    def wait(self, timeout: float) -> bool:
        """Whether the screen changed since the last call, waiting up to ``timeout`` s for a change."""

    def wake(self) -> None:
        """End a ``wait`` now (from any thread): the session is stopping."""

    def close(self) -> None:
        """Release the connection to the display server."""


class X11Damage:
    """DAMAGE on the root window, reporting only "not empty any more"; subtracting re-arms it."""

    def __init__(self, name: str | None = None) -> None:
        from Xlib import display
        from Xlib.ext import damage

        self._display: Any = display.Display(name)
        self._wake_r, self._wake_w = os.pipe()
        try:
            if not self._display.has_extension("DAMAGE"):
                raise OSError("the X server has no DAMAGE extension")
            self._display.damage_query_version()
            self._damage = self._display.screen().root.damage_create(damage.DamageReportNonEmpty)
            self._notify = self._display.extension_event.DamageNotify
            self._display.flush()
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float) -> bool:
        conn = self._display
        if not conn.pending_events() and timeout > 0:
            ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
        changed = False
        while conn.pending_events():
            changed |= conn.next_event().type == self._notify
        if changed:
            # Subtracting before the grab: drawing during the grab reports again, so no change is ever missed.
            conn.damage_subtract(self._damage)
            conn.flush()
        return changed

    def wake(self) -> None:
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._display.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def watch_for(source: ScreenSource) -> ChangeWatch | None:
    """A change watch for the screen ``source`` captures, or None where there is none (the host then ticks)."""
    if not isinstance(source, MssSource) or not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return None
    try:
        return X11Damage()
    except Exception as exc:  # python-xlib raises its own kinds; without a watch the tick still works
        logger.info("no X11 DAMAGE watch, capturing on a fixed tick: %s", exc)
        return None
