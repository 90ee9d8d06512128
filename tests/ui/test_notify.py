"""Notifications go to the desktop's notification service when the session bus has one, else to the tray's balloon.

The service here is a real one on the test's private session D-Bus (``tests/notification_server.py``), called over
the wire by the same code a desktop's daemon would answer.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.notify import Notifier
from tests.notification_server import NotificationServer
from tests.ui.waiting import Run, eventually

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop notifications are Linux's")


def balloons(app: QApplication) -> list[str]:
    """Qt's own balloon windows on screen (what the tray shows where there is no notification service)."""
    return [w.metaObject().className() for w in app.topLevelWidgets() if w.isVisible() and "Balloon" in
            w.metaObject().className()]  # fmt: skip


def test_a_desktop_with_a_notification_service_gets_the_notification(run: Run, tray_app: QApplication) -> None:
    icon = QSystemTrayIcon(app_icon(False))
    icon.show()
    notifier = Notifier(icon)

    async def scenario() -> None:
        with NotificationServer() as server:
            notifier.notify("beta sent you film.mov", "3.0 MB, saved in /home/me/Downloads/NOIZYLAB")
            await eventually(lambda: server.received, 10, "the notification service to get the notification")
            assert server.summaries() == [
                ("NOIZYLAB", "beta sent you film.mov", "3.0 MB, saved in /home/me/Downloads/NOIZYLAB")
            ]
            await eventually(lambda: notifier.shown, 10, "the notifier to say how it went")
            assert notifier.shown == [
                ("desktop", "beta sent you film.mov", "3.0 MB, saved in /home/me/Downloads/NOIZYLAB")
            ]
            assert balloons(tray_app) == []

    try:
        run(scenario())
    finally:
        icon.hide()


def test_without_a_notification_service_the_tray_balloon_shows_it(run: Run, tray_app: QApplication) -> None:
    icon = QSystemTrayIcon(app_icon(False))
    icon.show()
    notifier = Notifier(icon)

    async def scenario() -> None:
        notifier.notify("File not sent", "beta does not answer", warning=True)
        await eventually(lambda: notifier.shown, 10, "the notifier to fall back to the tray")
        assert notifier.shown == [("tray", "File not sent", "beta does not answer")]
        await eventually(lambda: balloons(tray_app), 10, "the tray's balloon to show")

    try:
        run(scenario())
    finally:
        icon.hide()
