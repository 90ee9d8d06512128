"""The node's event bus: typed, frozen events; subscribers choose the types they want.

Publishing never blocks: each subscriber has a bounded queue, and a subscriber that falls behind loses its oldest
events (and is told how many) rather than slowing the node down.

Every event class says who beyond this node's own user may see it on the wire (``Node.WatchEvents``): ``PUBLIC``
(the grid's public health, any paired peer), ``AboutPeer(field)`` (only the peer whose node ID that field holds) or
``OWN_NODE_ONLY``, the default, so that a new event type stays on this node until someone decides otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnNodeOnly:
    """Only this node's own user sees the event: its command line and tray, which hold the node's own certificate."""


@dataclass(frozen=True)
class Public:
    """Every paired peer sees the event: the public health of the grid, naming nothing private."""


@dataclass(frozen=True)
class AboutPeer:
    """Only the peer whose node ID is in the event's field ``field`` sees the event (and this node's own user)."""

    field: str


Audience = OwnNodeOnly | Public | AboutPeer
OWN_NODE_ONLY: Final = OwnNodeOnly()
PUBLIC: Final = Public()


@dataclass(frozen=True)
class Event:
    """Base of every event; ``kind`` names it on the wire, ``audience`` says which peers may see it there."""

    kind: ClassVar[str] = "event"
    audience: ClassVar[Audience] = OWN_NODE_ONLY
    at: float = field(default_factory=time.time, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A misspelt field would hide the event from its peer, or break the stream: refuse it at import instead.
        if isinstance(cls.audience, AboutPeer) and not any(
            cls.audience.field in vars(klass).get("__annotations__", {}) for klass in cls.__mro__
        ):
            raise TypeError(f"{cls.__name__}.audience names {cls.audience.field!r}, which is not one of its fields")

    def fields(self) -> dict[str, str]:
        """The event's data as strings, for the wire and for logs."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "at"}

    def visible_to(self, peer_id: str) -> bool:
        """Whether the paired peer with node ID ``peer_id`` may see this event (this node's own user sees all)."""
        match self.audience:
            case Public():
                return True
            case AboutPeer(field=name):
                return bool(peer_id) and getattr(self, name) == peer_id
            case _:
                return False


@dataclass(frozen=True)
class PeerOnline(Event):
    """A paired peer answers again: the grid's health, which every member may know."""

    kind: ClassVar[str] = "peer.online"
    audience: ClassVar[Audience] = PUBLIC
    peer_id: str
    name: str


@dataclass(frozen=True)
class PeerOffline(Event):
    kind: ClassVar[str] = "peer.offline"
    audience: ClassVar[Audience] = PUBLIC
    peer_id: str
    name: str


@dataclass(frozen=True)
class PeerPaired(Event):
    """A machine joined; its verification string is for the two people pairing, so only that peer hears of it."""

    kind: ClassVar[str] = "peer.paired"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    peer_id: str
    name: str
    verification: str


@dataclass(frozen=True)
class PeerUnpaired(Event):
    kind: ClassVar[str] = "peer.unpaired"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    peer_id: str
    name: str


@dataclass(frozen=True)
class PeerRenamed(Event):
    """A peer renamed itself: this node calls it ``name`` now (``was`` before)."""

    kind: ClassVar[str] = "peer.renamed"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    peer_id: str
    name: str
    was: str


@dataclass(frozen=True)
class PeerKeyRotated(Event):
    """A peer rotated its ``key`` ("identity": it is ``peer_id`` now, ``was`` before; "ssh": same ID)."""

    kind: ClassVar[str] = "peer.key_rotated"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    peer_id: str
    name: str
    was: str
    key: str


@dataclass(frozen=True)
class NodeRenamed(Event):
    """This node's own user renamed it."""

    kind: ClassVar[str] = "node.renamed"
    name: str
    was: str


@dataclass(frozen=True)
class InviteOpened(Event):
    """The owner's new invite code, one-time secret included: never leaves this node."""

    kind: ClassVar[str] = "pairing.invite"
    code: str
    expires_at: float


@dataclass(frozen=True)
class ServiceRestarted(Event):
    """A service of this node crashed and restarts; its error text may name paths and peers, so it stays here."""

    kind: ClassVar[str] = "service.restarted"
    service: str
    error: str
    delay_s: float


@dataclass(frozen=True)
class PermissionChanged(Event):
    kind: ClassVar[str] = "peer.permission"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    peer_id: str
    scope: str
    allowed: bool


@dataclass(frozen=True)
class Dropped(Event):
    """Told to a subscriber that fell behind; made for that one subscription, counting only what it would have seen."""

    kind: ClassVar[str] = "bus.dropped"
    audience: ClassVar[Audience] = PUBLIC
    count: int


class Subscription:
    """Events of the chosen types, in order; iterate it or ``await get()``."""

    def __init__(
        self, bus: EventBus, types: tuple[type[Event], ...], size: int, where: Callable[[Event], bool] | None = None
    ) -> None:
        self._bus = bus
        self.types = types
        self._where = where
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max(2, size))

    def wants(self, event: Event) -> bool:
        if self.types and not isinstance(event, self.types):
            return False
        return self._where is None or self._where(event)

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

    def subscribe(
        self, *types: type[Event], size: int = 256, where: Callable[[Event], bool] | None = None
    ) -> Subscription:
        """A new subscription to ``types`` (none: every event), narrowed to the events ``where`` accepts."""
        sub = Subscription(self, types, size, where)
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
