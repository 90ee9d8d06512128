"""The node's event bus: typed, frozen events; subscribers choose the types they want.

Publishing never blocks: each subscriber has a bounded queue, and a subscriber that falls behind loses its oldest
events (and is told how many) rather than slowing the node down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import ClassVar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every event; ``kind`` names it on the wire."""

    kind: ClassVar[str] = "event"
    at: float = field(default_factory=time.time, kw_only=True)

    def fields(self) -> dict[str, str]:
        """The event's data as strings, for the wire and for logs."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "at"}


@dataclass(frozen=True)
class PeerOnline(Event):
    kind: ClassVar[str] = "peer.online"
    peer_id: str
    name: str


@dataclass(frozen=True)
class PeerOffline(Event):
    kind: ClassVar[str] = "peer.offline"
    peer_id: str
    name: str


@dataclass(frozen=True)
class PeerPaired(Event):
    kind: ClassVar[str] = "peer.paired"
    peer_id: str
    name: str
    verification: str


@dataclass(frozen=True)
class PeerUnpaired(Event):
    kind: ClassVar[str] = "peer.unpaired"
    peer_id: str
    name: str


@dataclass(frozen=True)
class InviteOpened(Event):
    kind: ClassVar[str] = "pairing.invite"
    code: str
    expires_at: float


@dataclass(frozen=True)
class ServiceRestarted(Event):
    kind: ClassVar[str] = "service.restarted"
    service: str
    error: str
    delay_s: float


@dataclass(frozen=True)
class PermissionChanged(Event):
    kind: ClassVar[str] = "peer.permission"
    peer_id: str
    scope: str
    allowed: bool


@dataclass(frozen=True)
class Dropped(Event):
    """Told to a subscriber that fell behind."""

    kind: ClassVar[str] = "bus.dropped"
    count: int


class Subscription:
    """Events of the chosen types, in order; iterate it or ``await get()``."""

    def __init__(self, bus: EventBus, types: tuple[type[Event], ...], size: int) -> None:
        self._bus = bus
        self.types = types
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max(2, size))

    def wants(self, event: Event) -> bool:
        return not self.types or isinstance(event, self.types)

    def offer(self, event: Event) -> None:
        if self._queue.full():
            # Make room for the event and for a notice of how many were lost (earlier notices fold in).
            lost = 0
            while self._queue.qsize() > self._queue.maxsize - 2:
                old = self._queue.get_nowait()
                lost += old.count if isinstance(old, Dropped) else 1
            self._queue.put_nowait(Dropped(count=lost))
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of typed events to subscribers on the node's loop."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []

    def subscribe(self, *types: type[Event], size: int = 256) -> Subscription:
        """A new subscription to ``types`` (none: every event)."""
        sub = Subscription(self, types, size)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def listen(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` synchronously for every event (the UI bridge uses this); returns an undo."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to everyone who wants it; call on the loop."""
        logger.debug("event %s %s", event.kind, event.fields())
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                logger.exception("event listener failed on %s", event.kind)
