"""A helper app for the display tests, run on the host's Xvfb: what the viewer should see, and where input lands.

    pattern            a still test pattern over the whole screen
    counter            a frame counter drawn as black/white blocks; prints ``drawn N T`` (T: time.time()) per frame
    input X Y W H      a window that prints ``click X Y BUTTON`` (window pixels) and ``key TEXT`` as they arrive
    changing [FPS]     the counter plus a moving band: the whole picture changes every frame (for the bench)
    typing [CPS]       a text that grows by a character at a time, as typing does (for the bench)

It prints ``ready`` once its window is on the screen.
"""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QColor, QFocusEvent, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QApplication, QWidget

BITS = 16
CELL = 24  # counter blocks: big enough to survive H.264 at any sane quality


def counter_cells(width: int, height: int) -> list[QRect]:
    """Where each counter bit is drawn; the tests read the same places (see ``read_counter``)."""
    top = height // 2 - CELL // 2
    return [QRect(8 + i * (CELL + 8), top, CELL, CELL) for i in range(BITS)]


def read_counter(gray: object, width: int, height: int) -> int:
    """The counter in a decoded picture (a numpy array of gray levels); the inverse of what ``Counter`` paints."""
    value = 0
    for i, cell in enumerate(counter_cells(width, height)):
        cy, cx = cell.center().y(), cell.center().x()
        patch = gray[cy - 4 : cy + 4, cx - 4 : cx + 4]  # type: ignore[index]
        if float(patch.mean()) > 128:
            value |= 1 << i
    return value


class Screen(QWidget):
    def __init__(self, mode: str) -> None:
        super().__init__(None, Qt.WindowType.FramelessWindowHint)
        self.mode = mode
        self.count = 0
        self.setCursor(Qt.CursorShape.BlankCursor)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        w, h = self.width(), self.height()
        if self.mode == "pattern":
            colours = ["#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0", "#202020"]
            for i, colour in enumerate(colours):
                p.fillRect(QRect(i * w // 8, 0, w // 8 + 1, h // 2), QColor(colour))
            for i in range(16):
                p.fillRect(QRect(i * w // 16, h // 2, w // 16 + 1, h // 4), QColor(i * 16, i * 16, i * 16))
            for i in range(8):
                p.fillRect(QRect(i * w // 8, 3 * h // 4, w // 8 + 1, h // 4), QColor("#ffffff" if i % 2 else "#000000"))
        elif self.mode == "typing":
            p.fillRect(self.rect(), QColor(250, 250, 250))
            p.setPen(QColor(20, 20, 20))
            text = ("The quick brown fox jumps over the lazy dog. " * 40)[: self.count]
            per_line = max(1, (w - 80) // 10)
            for row in range(0, len(text), per_line):
                p.drawText(QPoint(40, 60 + 22 * (row // per_line)), text[row : row + per_line])
        else:
            p.fillRect(self.rect(), QColor(40, 40, 40))
            if self.mode == "changing":
                band = (self.count * 7) % max(1, w)
                p.fillRect(QRect(band, 0, 80, h), QColor(200, (self.count * 5) % 255, 90))
            for i, cell in enumerate(counter_cells(w, h)):
                p.fillRect(cell, QColor("white") if self.count >> i & 1 else QColor("black"))
        p.end()

    def tick(self) -> None:
        self.count += 1
        self.repaint()
        QApplication.instance().processEvents()  # type: ignore[union-attr]
        print(f"drawn {self.count} {time.time():.6f}", flush=True)


class InputProbe(QWidget):
    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.FramelessWindowHint)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.clicked = ""

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 90, 160))
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos: QPoint = event.position().toPoint()
        self.clicked = f"click {pos.x()} {pos.y()} {int(event.button().value)}"
        # The click is reported once the window holds the keyboard focus, so the test types only after that.
        if self.hasFocus() and self.isActiveWindow():
            self._report_click()
        else:
            self.activateWindow()
            self.setFocus()

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802
        super().focusInEvent(event)
        self._report_click()

    def _report_click(self) -> None:
        if self.clicked:
            print(self.clicked, flush=True)
            self.clicked = ""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.text():
            print(f"key {event.text()!r}", flush=True)


def main() -> int:
    mode = sys.argv[1]
    app = QApplication(sys.argv[:1])
    screen = app.primaryScreen().geometry()
    widget: QWidget
    if mode == "input":
        x, y, w, h = (int(v) for v in sys.argv[2:6])
        widget = InputProbe()
        widget.setGeometry(x, y, w, h)
    else:
        widget = Screen(mode)
        widget.setGeometry(screen)
    widget.show()
    widget.raise_()
    widget.activateWindow()
    if mode in ("counter", "changing", "typing"):
        timer = QTimer(widget)
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.timeout.connect(widget.tick)  # type: ignore[union-attr]
        QTimer.singleShot(300, lambda: timer.start(1000 // int(sys.argv[2]) if len(sys.argv) > 2 else 33))
    QTimer.singleShot(200, lambda: print("ready", flush=True))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
