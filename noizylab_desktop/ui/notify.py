"""Notifications: the desktop's own where it has a notification service, the tray icon's balloon otherwise.

On Linux that service is freedesktop's ``org.freedesktop.Notifications`` on the session D-Bus (GNOME, KDE, XFCE,
dunst...), called with jeepney (pure Python, already there for the keychain) from a worker thread, so a slow or
absent daemon never holds the loop; when no one owns that name, or the call fails, the tray's balloon shows the
message instead. On macOS and Windows, Qt's ``showMessage`` is the system's own notification (Notification Center,
the Windows toast), so the balloon is the native path there.
"""

from __future__ import annotations

import logging
import sys
import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon

logger = logging.getLogger(__name__)

APP_NAME = "NOIZYLAB"
SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
TIMEOUT_S = 2.0
SHOW_MS = 8000


def freedesktop_notify(title: str, body: str, warning: bool) -> bool:
    """Show a notification through ``org.freedesktop.Notifications``; whether the service took it (blocking)."""
    try:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection
    except ImportError:
        return False
    try:
        with open_dbus_connection(bus="SESSION") as conn:
            owned = conn.send_and_get_reply(message_bus.NameHasOwner(SERVICE), timeout=TIMEOUT_S)
            if not owned.body[0]:
                startable = conn.send_and_get_reply(message_bus.ListActivatableNames(), timeout=TIMEOUT_S)
                if SERVICE not in startable.body[0]:
                    return False
            address = DBusAddress(PATH, bus_name=SERVICE, interface=SERVICE)
            hints = {"urgency": ("y", 2 if warning else 1)}
            call = new_method_call(
                address, "Notify", "susssasa{sv}i", (APP_NAME, 0, "", title, body, [], hints, SHOW_MS)
            )
            reply = conn.send_and_get_reply(call, timeout=TIMEOUT_S)
            return bool(reply.header.message_type == MessageType.method_return)
    except (OSError, KeyError, ValueError, TimeoutError) as exc:
        # No session bus (no DBUS_SESSION_BUS_ADDRESS, a closed socket) or no answer in time.
        logger.debug("no desktop notification service: %s", exc)
        return False


class Notifier(QObject):
    """Shows a notification the best way this desktop offers; ``shown`` lists how each went (tests read it)."""

    _fell_back = Signal(str, str, bool)

    def __init__(self, icon: QSystemTrayIcon | None = None) -> None:
        super().__init__()
        self.icon = icon
        self.native = sys.platform.startswith("linux")
        self.shown: list[tuple[str, str, str]] = []  # (how: "desktop" or "tray", title, body)
        self._fell_back.connect(self._balloon)

    def notify(self, title: str, body: str, *, warning: bool = False, wait: bool = False) -> None:
        """Show ``title`` and ``body``: the desktop's service where there is one, else the tray's balloon.

        ``wait``: call the service on this thread (at most a few seconds), for a message the app shows as it quits.
        """
        if not self.native:
            self._balloon(title, body, warning)
        elif wait:
            if freedesktop_notify(title, body, warning):
                self.shown.append(("desktop", title, body))
            else:
                self._balloon(title, body, warning)
        else:
            threading.Thread(target=self._desktop, args=(title, body, warning), daemon=True, name="notify").start()

    def _desktop(self, title: str, body: str, warning: bool) -> None:
        if freedesktop_notify(title, body, warning):
            self.shown.append(("desktop", title, body))
        else:
            self._fell_back.emit(title, body, warning)  # queued to the Qt thread, where the icon lives

    def _balloon(self, title: str, body: str, warning: bool) -> None:
        self.shown.append(("tray", title, body))
        if self.icon is not None:
            kind = QSystemTrayIcon.MessageIcon.Warning if warning else QSystemTrayIcon.MessageIcon.Information
            self.icon.showMessage(title, body, kind, SHOW_MS)
