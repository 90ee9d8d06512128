"""The one place where the node's events become Qt signals.

``EventBus.listen`` calls ``Bridge`` synchronously on the loop thread, which under qasync is the Qt main thread,
so each signal is emitted (and its direct connections run) right where the event is published.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from noizylab_desktop.core.events import (
    Event,
    EventBus,
    InviteOpened,
    PeerOffline,
    PeerOnline,
    PeerPaired,
    PeerUnpaired,
    ServiceRestarted,
)


class Bridge(QObject):
    """Re-emits the node's events as typed Qt signals until ``close``."""

    peer_online = Signal(str, str)  # peer id, name
    peer_offline = Signal(str, str)  # peer id, name
    peer_paired = Signal(str, str, str)  # peer id, name, verification string
    peer_unpaired = Signal(str, str)  # peer id, name
    invite_opened = Signal(str, float)  # code, expires at (epoch seconds)
    service_restarted = Signal(str, str)  # service, error
    # Every event, typed: features' windows connect here and match the event classes their service defines.
    any_event = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unlisten = bus.listen(self._deliver)

    def close(self) -> None:
        """Stop listening to the bus."""
        self._unlisten()

    def _deliver(self, event: Event) -> None:
        self.any_event.emit(event)
        match event:
            case PeerOnline(peer_id=peer_id, name=name):
                self.peer_online.emit(peer_id, name)
            case PeerOffline(peer_id=peer_id, name=name):
                self.peer_offline.emit(peer_id, name)
            case PeerPaired(peer_id=peer_id, name=name, verification=verification):
                self.peer_paired.emit(peer_id, name, verification)
            case PeerUnpaired(peer_id=peer_id, name=name):
                self.peer_unpaired.emit(peer_id, name)
            case InviteOpened(code=code, expires_at=expires_at):
                self.invite_opened.emit(code, expires_at)
            case ServiceRestarted(service=service, error=error):
                self.service_restarted.emit(service, error)
