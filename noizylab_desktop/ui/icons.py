"""Icons drawn with QPainter at run time, so the tray ships no image files and stays sharp at any scale."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPen, QPixmap

ONLINE = QColor("#2ea043")
ONLINE_EDGE = QColor("#1a7f37")
OFFLINE = QColor("#8c959f")
BACKGROUND = QColor("#22272e")
LINK = QColor("#768390")
IDLE_NODE = QColor("#e6edf3")

# Sizes the platforms ask for: menus (16), Linux trays (22, 24), Windows at 150-200 % (32), macOS retina (44, 64).
_SIZES = (16, 22, 24, 32, 44, 64)


def _pixmap(size: int) -> tuple[QPixmap, QPainter]:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pixmap, painter


def _dot_pixmap(online: bool, size: int) -> QPixmap:
    pixmap, painter = _pixmap(size)
    # A quarter of the icon stays empty around the dot so it sits like a bullet beside the menu text.
    radius = size * 0.28
    centre = QPointF(size / 2, size / 2)
    if online:
        painter.setPen(QPen(ONLINE_EDGE, max(1.0, size / 16)))
        painter.setBrush(QBrush(ONLINE))
    else:
        painter.setPen(QPen(OFFLINE, max(1.5, size / 10)))
        painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawEllipse(centre, radius, radius)
    painter.end()
    return pixmap


def health_dot(online: bool) -> QIcon:
    """A peer's health: a filled green dot when online, a hollow grey ring when offline."""
    icon = QIcon()
    for size in _SIZES:
        pixmap = _dot_pixmap(online, size)
        icon.addPixmap(pixmap, QIcon.Mode.Normal)
        # Menus grey out icons of disabled or inactive rows; health must read the same everywhere.
        icon.addPixmap(pixmap, QIcon.Mode.Disabled)
    return icon


def _mark_pixmap(size: int, any_online: bool) -> QPixmap:
    pixmap, painter = _pixmap(size)
    unit = size / 64
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(BACKGROUND)
    painter.drawRoundedRect(QRectF(2 * unit, 2 * unit, 60 * unit, 60 * unit), 14 * unit, 14 * unit)
    # Three joined nodes: the grid. They light up green while at least one peer answers.
    nodes = [QPointF(20 * unit, 42 * unit), QPointF(44 * unit, 42 * unit), QPointF(32 * unit, 20 * unit)]
    painter.setPen(QPen(LINK, 4 * unit))
    for i, start in enumerate(nodes):
        painter.drawLine(start, nodes[(i + 1) % len(nodes)])
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(ONLINE if any_online else IDLE_NODE)
    for node in nodes:
        painter.drawEllipse(node, 8 * unit, 8 * unit)
    painter.end()
    return pixmap


def app_icon(any_online: bool) -> QIcon:
    """The tray and window icon; its nodes turn green while any peer is online."""
    icon = QIcon()
    for size in _SIZES:
        icon.addPixmap(_mark_pixmap(size, any_online))
    return icon
