"""Reading the tray the way a person sees it: the menu's rows, the colour of a health dot, the icon's X window."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from PySide6.QtGui import QAction, QColor, QIcon
from PySide6.QtWidgets import QApplication, QWidget

from noizylab_desktop.ui.icons import ONLINE
from noizylab_desktop.ui.tray import Tray
from tests.ui.waiting import eventually

DOT_SIZE = 16


@dataclass(frozen=True)
class Row:
    """One menu row as shown: its text, whether it can be picked, and its health dot (if any)."""

    text: str
    enabled: bool
    dot: str  # "green" (filled), "hollow", or "" for rows without a dot


def dot_of(icon: QIcon) -> str:
    """What the dot looks like at menu size: a filled green disc, a hollow ring, or nothing."""
    if icon.isNull():
        return ""
    image = icon.pixmap(DOT_SIZE).toImage()
    centre = image.pixelColor(DOT_SIZE // 2, DOT_SIZE // 2)
    if centre.alpha() == 0:
        return "hollow"
    return "green" if _near(centre, ONLINE) else f"other {centre.name()}"


def _near(a: QColor, b: QColor) -> bool:
    return max(abs(a.red() - b.red()), abs(a.green() - b.green()), abs(a.blue() - b.blue())) < 24


def rows_of(actions: list[QAction]) -> list[Row]:
    """The menu's rows, separators left out."""
    return [Row(a.text(), a.isEnabled(), dot_of(a.icon())) for a in actions if not a.isSeparator()]


async def open_menu(tray: Tray) -> list[Row]:
    """Pop the tray menu up under the icon, as a click does, and read its rows; then close it."""
    menu = tray.menu
    menu.popup(tray.icon.geometry().bottomLeft())
    try:
        await eventually(menu.isVisible, 5, "the tray menu to show")
        return rows_of(menu.actions())
    finally:
        menu.hide()


def action(tray: Tray, text: str) -> QAction:
    """The menu item labelled ``text`` (after the menu was rebuilt for showing)."""
    tray.menu.aboutToShow.emit()
    found = [a for a in tray.menu.actions() if a.text() == text]
    assert found, f"no menu item {text!r} in {[a.text() for a in tray.menu.actions()]}"
    return found[0]


def icon_window(app: QApplication) -> QWidget:
    """The small X window Qt embeds in the tray host for a visible QSystemTrayIcon."""
    shown = [w for w in app.topLevelWidgets() if w.metaObject().className() == "QSystemTrayIconSys" and w.isVisible()]
    assert len(shown) == 1, f"expected one tray icon window, found {len(shown)}"
    return shown[0]


def embedded_in_trayer(window: QWidget) -> bool:
    """True when the X window of ``window`` sits inside one of trayer's windows (XEmbed)."""
    trayers = subprocess.run(["xdotool", "search", "--class", "trayer"], capture_output=True, text=True).stdout.split()
    wanted = hex(int(window.winId()))
    for trayer in trayers:
        tree = subprocess.run(["xwininfo", "-tree", "-id", trayer], capture_output=True, text=True).stdout
        if wanted in tree.split():
            return True
    return False
