"""Garbage collection on the GUI thread only.

Python's cyclic collector runs in whichever thread happens to allocate when a threshold is crossed. A worker thread
(hashing, the routing advisor, watchdog, gRPC callbacks) can then free a Qt object caught in a reference cycle, a
closed qasync loop's timer object among them. A QObject destroyed outside its own thread cannot unregister its
timers, and the GUI thread later delivers a timer event to freed memory: a segfault in
``QCoreApplication::notifyInternal2`` from ``QTimerInfoList::activateTimers`` (seen in the UI tests, about one run in
three). So the tray app turns automatic collection off and collects from a Qt timer on the GUI thread instead,
generation by generation as the usual thresholds say (pyqtgraph's ``GarbageCollector`` does the same).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

INTERVAL_MS = 500

_installed: dict[int, GuiThreadCollector] = {}


def collect_due() -> int:
    """Collect the generations whose thresholds are crossed, as automatic collection would; how many were freed."""
    threshold = gc.get_threshold()
    counts = gc.get_count()
    freed = 0
    if counts[0] > threshold[0]:
        freed += gc.collect(0)
        if counts[1] > threshold[1]:
            freed += gc.collect(1)
            if counts[2] > threshold[2]:
                freed += gc.collect(2)
    return freed


class GuiThreadCollector(QObject):
    """Collects garbage every ``INTERVAL_MS`` from the GUI thread's event loop, automatic collection off."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(collect_due)

    def start(self) -> None:
        gc.disable()
        self._timer.start()


def collect_on_gui_thread(app: QApplication) -> GuiThreadCollector:
    """Move the process's garbage collection onto ``app``'s thread (once per application)."""
    collector = _installed.get(id(app))
    if collector is None:
        collector = _installed[id(app)] = GuiThreadCollector(app)
        collector.start()
    return collector
