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
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from noizylab_desktop.services.sync.ignore import is_internal

logger = logging.getLogger(__name__)

QUIET_S = 0.05
CAP_S = 2.0
# Every change, but not opens and read-only closes: reading a file (our own scans and sends, the user's programs)
# then wakes no watchdog thread at all, as the kernel is not asked for those events.
CHANGES = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
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
    ) -> None:
        self.root = root
        self.loop = loop
        self.on_batch = on_batch
        self.quiet_s = quiet_s
        self.cap_s = cap_s
        self.polling = False
        self.warning = ""
        self._pending: set[str] = set()
        self._first = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        try:
            self._observer = self._start(Observer())
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

    def saw(self, path: str) -> None:
        """Called on watchdog's thread."""
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return
        if rel == "." or is_internal(rel):
            return
        self.loop.call_soon_threadsafe(self._add, rel)

    def _add(self, rel: str) -> None:
        now = self.loop.time()
        if not self._pending:
            self._first = now
        self._pending.add(rel)
        if self._timer is not None:
            self._timer.cancel()
        # A quiet window after the last event, but never later than cap_s after the first one.
        delay = min(self.quiet_s, max(0.0, self._first + self.cap_s - now))
        self._timer = self.loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        batch, self._pending, self._timer = self._pending, set(), None
        if batch:
            self.on_batch(batch)
