"""Whether anyone looks at the peers' figures: the dashboard, the JSON API, ``noizylab metrics``.

Peers' snapshots are pulled every sample only while someone looks, and much less often otherwise: a pull is a gRPC
call on both machines every second, which was half of an idle node's CPU. This node's own sample (and its hour of
history) keeps the full pace either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Demand:
    """Remembers the last look; a look counts for ``window_s`` seconds."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._looked_at = -math.inf

    def look(self) -> bool:
        """Someone looks now; True when nobody was looking just before (what they see may be one slow pull old)."""
        now = self._clock()
        was_watching = now - self._looked_at < self.window_s
        # A single float store: the HTTP server's threads call this too, and the GIL makes it atomic.
        self._looked_at = now
        return not was_watching

    def watching(self) -> bool:
        """True while the last look is at most ``window_s`` old."""
        return self._clock() - self._looked_at < self.window_s
