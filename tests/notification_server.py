"""A desktop notification service for tests: it owns ``org.freedesktop.Notifications`` on the session D-Bus (the
private one ``scripts/with-keyring.sh`` starts) and records each ``Notify`` call it answers, as a desktop's
notification daemon (GNOME Shell, KDE, dunst) would receive them."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from jeepney import HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

SERVICE = "org.freedesktop.Notifications"
DO_NOT_QUEUE = 4
PRIMARY_OWNER = 1


class NotificationServer:
    """``with NotificationServer() as server``: ``server.received`` lists each Notify call's arguments."""

    def __init__(self) -> None:
        self.received: list[tuple[Any, ...]] = []
        self._stop = threading.Event()
        self._conn = open_dbus_connection(bus="SESSION")
        self._thread = threading.Thread(target=self._serve, daemon=True, name="notification-server")

    def __enter__(self) -> NotificationServer:
        reply = self._conn.send_and_get_reply(message_bus.RequestName(SERVICE, DO_NOT_QUEUE), timeout=5)
        assert reply.body[0] == PRIMARY_OWNER, f"{SERVICE} is already owned on this bus"
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)
        self._conn.send_and_get_reply(message_bus.ReleaseName(SERVICE), timeout=5)
        self._conn.close()

    def summaries(self) -> list[tuple[str, str, str]]:
        """(app name, summary, body) of each notification received."""
        return [(body[0], body[3], body[4]) for body in self.received]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            if message.header.message_type != MessageType.method_call:
                continue
            if message.header.fields.get(HeaderFields.member) == "Notify":
                self.received.append(tuple(message.body))
                self._conn.send(new_method_return(message, "u", (len(self.received),)))
            else:
                self._conn.send(new_error(message, "org.freedesktop.DBus.Error.UnknownMethod"))
