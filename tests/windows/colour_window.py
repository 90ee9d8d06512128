"""A window filled with one colour on the Windows desktop, for the remote desktop test: what the host captures.

Run by ``test_display.py`` as ``python colour_window.py X Y WIDTH HEIGHT RRGGBB``: a frameless window at that place
on the screen (Qt's ``windows`` plugin, drawn by Wine through X), ``ready`` printed once it is shown, ``click X Y``
for every mouse press it gets (in the window's own coordinates); it exits when stdin closes.
"""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPalette
from PySide6.QtWidgets import QApplication, QWidget


class Window(QWidget):
    def mousePressEvent(self, event: QMouseEvent) -> None:
        point = event.position().toPoint()
        print(f"click {point.x()} {point.y()}", flush=True)


class StdinClosed(QObject):
    closed = Signal()


def main() -> None:
    x, y, width, height = (int(v) for v in sys.argv[1:5])
    app = QApplication([])
    window = Window()
    window.setWindowFlags(Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint)
    palette = window.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(f"#{sys.argv[5]}"))
    window.setPalette(palette)
    window.setAutoFillBackground(True)
    window.setGeometry(x, y, width, height)
    window.show()
    stdin = StdinClosed()
    stdin.closed.connect(app.quit)
    threading.Thread(target=lambda: (sys.stdin.read(), stdin.closed.emit()), daemon=True).start()
    print("ready", flush=True)
    app.exec()


if __name__ == "__main__":
    main()
