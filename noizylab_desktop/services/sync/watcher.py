"""watchdog → batches of changed paths, after a quiet window (50 ms by default, ``[sync] quiet_ms``), at most
``cap_s`` late for files that keep changing. Sync's own temp files and versions folder are dropped here; the engine
drops its own finished writes by comparing stats with the index. When the OS runs out of inotify watches it falls
back to polling and says which limit to raise.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from noizylab_desktop.services.sync.ignore import is_internal

if sys.platform.startswith("linux"):
    from noizylab_desktop.services.sync.inotify import InotifyObserver as Observer

    _LANDINGS = True  # this observer can drop sync's landings
else:
    from watchdog.observers import Observer

    _LANDINGS = False

logger = logging.getLogger(__name__)

QUIET_S = 0.05
CAP_S = 2.0
# Every change, but not opens and read-only closes: reading a file (our own scans and sends, the user's programs)
# then wakes no watchdog thread at all, as the kernel is not asked for those events. Nor "folder modified", which
# watchdog adds beside every event of a file in it: the file's own event says more, and the folder's would make
# the engine take sync's own writes for a change.
CHANGES = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
INOTIFY_HINT = "raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=524288)"


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self.watcher.saw(os.fsdecode(raw))


class Watcher:
    """Watches one folder; calls ``on_batch(paths)`` on the loop after each quiet window."""

    def __init__(
        self,
        root: Path,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[set[str]], None],
        quiet_s: float = QUIET_S,
        cap_s: float = CAP_S,
        drop_landings: bool = False,
    ) -> None:
        self.root = root
        # Files that sync lands here (a temp file renamed onto the final name) are not reported (Linux; see
        # landings.py): for a served folder's Watch stream, whose peer wrote them.
        self.drop_landings = drop_landings
        self.loop = loop
        self.on_batch = on_batch
        self.quiet_s = quiet_s
        self.cap_s = cap_s
        self.polling = False
        self.warning = ""
        self._root_prefix = os.path.join(str(root), "")
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # guarded by _lock, as are the three below
        self._first = 0.0
        self._last = 0.0
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        try:
            self._observer = self._start(
                Observer(drop_landings=True) if self.drop_landings and _LANDINGS else Observer()
            )
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            self.polling = True
            self.warning = f"out of inotify watches for {self.root}: polling instead; {INOTIFY_HINT}"
            logger.warning("%s", self.warning)
            self._observer = self._start(PollingObserver(timeout=1.0))

    def _start(self, observer: BaseObserver) -> BaseObserver:
        observer.schedule(_Handler(self), str(self.root), recursive=True, event_filter=CHANGES)
        observer.start()
        return observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        if self._timer is not None:
            self._timer.cancel()

    def saw_many(self, paths: list[str]) -> None:
        """``saw`` for many paths (any thread): files this node's own sync landed here (landings.py)."""
        for path in paths:
            self.saw(path)

    def saw(self, path: str) -> None:
        """Called on watchdog's thread. Paths gather here under a lock and the loop is woken once per batch, not
        once per event: a peer landing 10,000 files makes ~60,000 events, each of which used to wake the loop."""
        root = self._root_prefix
        if not path.startswith(root):
            return
        rel = path[len(root) :].replace(os.sep, "/")
        if not rel or is_internal(rel):
            return
        with self._lock:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending.add(rel)
            self._last = now
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        """On the loop: check again when the quiet window after the last event (or the cap) has passed."""
        with self._lock:
            # A quiet window after the last event, but never later than cap_s after the first one.
            due = min(self._last + self.quiet_s, self._first + self.cap_s)
            delay = max(0.0, due - time.monotonic())
        self._timer = self.loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        with self._lock:
            now = time.monotonic()
            if self._pending and now < min(self._last + self.quiet_s, self._first + self.cap_s) - 0.001:
                batch: set[str] = set()  # more events came meanwhile: wait for the quiet window after them
            else:
                batch, self._pending, self._scheduled = self._pending, set(), False
        if not batch:
            if self._scheduled:
                self._arm()
            return
        self.on_batch(batch)
