"""What the files service tells the tray: a file arrived from a peer, or one this node sent got there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import Event


@dataclass(frozen=True)
class FileArrived(Event):
    """``peer_name`` sent a file, saved as ``path`` in this node's folder (a local path: this node only)."""

    kind: ClassVar[str] = "files.arrived"
    peer_id: str
    peer_name: str
    name: str
    size: int
    path: str


@dataclass(frozen=True)
class FileSent(Event):
    """A file this node sent reached ``peer_name`` and was saved there as ``saved_as`` (this node only)."""

    kind: ClassVar[str] = "files.sent"
    peer_id: str
    peer_name: str
    name: str
    size: int
    saved_as: str
