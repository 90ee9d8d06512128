"""What the clipboard service tells the tray: arrivals, notices (skipped clips) and the pause switch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import AboutPeer, Audience, Event


@dataclass(frozen=True)
class ClipArrived(Event):
    """A peer's clip was written to this machine's clipboard (its kinds, never its content): news for that peer."""

    kind: ClassVar[str] = "clipboard.arrived"
    audience: ClassVar[Audience] = AboutPeer("peer_id")
    peer_id: str
    name: str
    kinds: str


@dataclass(frozen=True)
class ClipNotice(Event):
    """Something a person should hear about: a clip kept here (secret, too large) or refused by a peer.

    Its message names clips and peers, so it stays on this node.
    """

    kind: ClassVar[str] = "clipboard.notice"
    reason: str
    message: str


@dataclass(frozen=True)
class ClipPaused(Event):
    kind: ClassVar[str] = "clipboard.paused"
    paused: bool
