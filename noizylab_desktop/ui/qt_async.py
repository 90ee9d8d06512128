"""Typed doors to qasync (it ships no type hints): slots that await, and a runner for the Qt-driven loop.

The loop is qasync's with three changes. ``call_soon``: qasync starts a Qt timer for every callback (``startTimer(0)``,
a ``timerEvent`` into Python, ``killTimer``), and a gRPC call schedules a dozen of them (futures, task steps, the
completion queue's reader), so the tray's node paid that per callback (bench/rpc.py: about half the calls/s of
plain asyncio). Here ready callbacks go into one queue that a single zero-interval timer drains: one Qt wake-up per
batch, as asyncio's own loop runs its ready queue once per turn. A batch runs only what was queued when it started;
what those callbacks schedule waits for the next turn, so Qt's own events (input, painting) still come in between,
at the latest after ``TURNS_S`` of turns.

``call_soon_threadsafe`` likewise: qasync posts a queued Qt signal per call, and the threads that feed the loop (a
task's output readers, the sync watcher, screen capture) call it per chunk, per file event, per frame. Here a call
joins a locked list, and only the first one since the loop last took the list posts the signal that wakes it.

And a socket that becomes readable or writable (gRPC's completion queue, an SSH connection, a tunnel) runs its
callback in the Qt event that says so, then the callbacks it made ready: qasync disabled the notifier and deferred
the callback to a timer, two Qt events per wake-up where one does.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, cast

import qasync
from PySide6.QtCore import QObject, QSocketNotifier, Qt, QTimer, Signal, SignalInstance
from PySide6.QtWidgets import QApplication

P = ParamSpec("P")
AsyncMethod = Callable[P, Coroutine[Any, Any, None]]
TURNS_S = 0.002  # how long one wake-up may run turns before Qt's own events get their go


def async_slot(*types: type) -> Callable[[AsyncMethod[P]], Callable[P, asyncio.Task[None]]]:
    """``qasync.asyncSlot``: a Qt slot that runs the coroutine as a task on the loop and returns that task."""
    return cast(Callable[[AsyncMethod[P]], Callable[P, asyncio.Task[None]]], qasync.asyncSlot(*types))


def _activated(notifier: QSocketNotifier) -> SignalInstance:
    """The notifier's ``activated(int)``: the overload qasync connects, and its ``_remove_reader`` and ``close``
    disconnect (PySide6's stubs do not show that signals are indexed by signature)."""
    return cast(SignalInstance, cast(Any, notifier.activated)["int"])


class _Waker(QObject):
    """Lives on the loop's thread: ``wake``, emitted from any thread, runs its slot there."""

    wake = Signal()


class QEventLoop(qasync.QEventLoop):  # type: ignore[misc]  # qasync is untyped
    """qasync's loop with ready callbacks batched behind one zero-interval timer (see the module's docstring)."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._soon: collections.deque[asyncio.Handle] = collections.deque()
        self._turn = QTimer()
        self._turn.setSingleShot(True)
        self._turn.setInterval(0)
        self._turn.timeout.connect(self._run_soon)
        self._lock = threading.Lock()
        self._from_threads: list[asyncio.Handle] = []
        self._waker = _Waker()
        self._waker.wake.connect(self._take_from_threads, Qt.ConnectionType.QueuedConnection)

    def call_soon(
        self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        """Queue ``callback(*args)`` for the loop's next turn (asyncio's contract; on the loop's thread only)."""
        self._check_closed()
        handle = asyncio.Handle(callback, args, self, context=context)
        self._soon.append(handle)
        if not self._turn.isActive():
            self._turn.start()
        return handle

    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        """Queue ``callback(*args)`` from any thread; one wake-up for all the calls made before the loop takes them."""
        self._check_closed()
        handle = asyncio.Handle(callback, args, self, context=context)
        with self._lock:
            self._from_threads.append(handle)
            first = len(self._from_threads) == 1
        if first:
            self._waker.wake.emit()
        return handle

    def _take_from_threads(self) -> None:
        """On the loop's thread: what threads queued joins the ready queue, in the order they called."""
        with self._lock:
            taken, self._from_threads = self._from_threads, []
        if taken and not self.is_closed():
            self._soon.extend(taken)
            if not self._turn.isActive():
                self._turn.start()

    def _add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        """asyncio's ``add_reader`` (qasync's bookkeeping, so its ``_remove_reader`` still applies)."""
        self._watch(self._read_notifiers, QSocketNotifier.Type.Read, fd, asyncio.Handle(callback, args, self))

    def _add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        """asyncio's ``add_writer``, as ``_add_reader``."""
        self._watch(self._write_notifiers, QSocketNotifier.Type.Write, fd, asyncio.Handle(callback, args, self))

    def _watch(
        self, notifiers: dict[Any, QSocketNotifier], kind: QSocketNotifier.Type, fd: Any, handle: asyncio.Handle
    ) -> None:
        self._check_closed()
        existing = notifiers.pop(fd, None)
        if existing is not None:
            existing.setEnabled(False)
            _activated(existing).disconnect()
        notifier = QSocketNotifier(fd if isinstance(fd, int) else fd.fileno(), kind)
        _activated(notifier).connect(lambda *_: self._on_ready(notifiers, notifier, fd, handle))
        notifier.setEnabled(True)
        notifiers[fd] = notifier

    def _on_ready(
        self, notifiers: dict[Any, QSocketNotifier], notifier: QSocketNotifier, fd: Any, handle: asyncio.Handle
    ) -> None:
        """The socket is ready: its callback now, then what that made ready, in this one Qt event."""
        if notifiers.get(fd) is not notifier:  # removed or replaced since Qt queued this
            notifier.setEnabled(False)
            return
        handle._run()
        self._run_soon()

    def _run_soon(self) -> None:
        """Turns until the queue is empty or ``TURNS_S`` has passed, each running the callbacks queued before it."""
        try:
            deadline = time.monotonic() + TURNS_S
            while self._soon:
                # Counted down and checked: a nested Qt event loop (a modal dialog) may run turns inside this one.
                left = len(self._soon)
                while left and self._soon:
                    left -= 1
                    handle = self._soon.popleft()
                    if not handle.cancelled():
                        handle._run()
                # A stop asked for by a callback ends the turns, as asyncio's loop stops after its current one.
                if time.monotonic() >= deadline or not self.is_running():
                    break
        finally:
            # Also after KeyboardInterrupt or SystemExit, which a Handle lets through: the rest still runs later.
            if self._soon and not self._turn.isActive():
                self._turn.start()

    def close(self) -> None:
        """Close as qasync does, dropping callbacks that never got their turn."""
        super().close()
        self._turn.stop()
        self._soon.clear()
        with self._lock:
            self._from_threads.clear()


def runner(app: QApplication) -> asyncio.Runner:
    """An ``asyncio.Runner`` whose loop is Qt's event loop, so widgets and asyncio share one thread."""
    return asyncio.Runner(loop_factory=lambda: QEventLoop(app))
