"""Files this node's own sync lands (a temp file renamed onto its final name), told to the watchers that no longer
learn of such renames from the OS.

A served folder's ``Watch`` stream tells the driving peer what changed there. Most of what lands there is that
peer's own pushes, which it need not hear about: its watcher drops those renames as inotify reports them
(``inotify.py``), so a peer landing 10,000 files costs that watcher no event at all instead of one per file across
watchdog's three threads, and the driver no extra pass. But this node may also drive a share of the same folder
onward (a chain); what its own engine lands there (pulls, merges, resolved conflicts) must still reach the stream:
the engine's ``LocalFs`` tells this hub, once per batch, and the hub tells each subscribed watcher of a folder
holding those paths.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable


class Landings:
    """One per node: subscribers by folder; ``landed`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple[str, Callable[[list[str]], None]]] = {}  # guarded by _lock
        self._next = 0

    def subscribe(self, root: str, tell: Callable[[list[str]], None]) -> Callable[[], None]:
        """Call ``tell(paths)`` with the absolute paths landed under ``root``; returns the unsubscribe."""
        prefix = os.path.join(os.path.realpath(root), "")
        with self._lock:
            self._next += 1
            key = self._next
            self._subscribers[key] = (prefix, tell)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def landed(self, paths: Iterable[str]) -> None:
        """Files just renamed into place (absolute paths, links resolved: ``LocalFs.landed``)."""
        with self._lock:
            subscribers = list(self._subscribers.values())
        if not subscribers:
            return
        paths = [os.fspath(p) for p in paths]
        for prefix, tell in subscribers:
            if hits := [p for p in paths if p.startswith(prefix)]:
                tell(hits)
