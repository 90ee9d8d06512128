"""Events the display feature publishes on the node's bus (the tray listens through ``Bridge.any_event``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import AboutPeer, Audience, Event


@dataclass(frozen=True)
class ScreenShared(Event):
    """A peer started viewing (and maybe controlling) this screen."""

    kind: ClassVar[str] = "display.shared"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    session: int
    peer_id: str
    name: str
    control: bool


@dataclass(frozen=True)
class ScreenUnshared(Event):
    """A viewing session ended."""

    kind: ClassVar[str] = "display.unshared"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    session: int
    peer_id: str
    name: str
    reason: str
