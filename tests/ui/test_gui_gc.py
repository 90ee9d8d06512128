"""The tray app's garbage is collected on the GUI thread: a Qt object freed from a worker thread crashes Qt."""

from __future__ import annotations

import gc
import threading
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.slowness import scaled


def test_a_qt_object_in_a_cycle_is_freed_on_the_gui_thread_while_a_worker_thread_churns(
    tray_app: QApplication, qtbot: QtBot
) -> None:
    collections_in: list[int] = []
    freed_in: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections_in.append(threading.get_ident())

    gc.callbacks.append(note)
    try:
        orphan = QObject()
        orphan.setProperty("name", "orphan")
        orphan.destroyed.connect(lambda *_: freed_in.append(threading.get_ident()))
        cycle: list[Any] = [orphan]
        cycle.append(cycle)
        del orphan, cycle

        def churn() -> None:
            for _ in range(100_000):  # cyclic garbage far past every collection threshold
                loop: list[Any] = []
                loop.append(loop)

        worker = threading.Thread(target=churn)
        worker.start()
        worker.join()
        assert collections_in == [], "nothing is collected on a worker thread"
        assert freed_in == []

        qtbot.waitUntil(lambda: bool(freed_in), timeout=int(scaled(5) * 1000))
        assert freed_in == [threading.main_thread().ident], "the object was freed on the GUI thread"
        assert set(collections_in) == {threading.main_thread().ident}
    finally:
        gc.callbacks.remove(note)
