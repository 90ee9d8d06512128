"""Sync's events on the node's bus (the tray listens to them through ``bridge.any_event``).

They name local folders and files, so none leaves this node (the default audience).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import Event


@dataclass(frozen=True)
class ShareState(Event):
    kind: ClassVar[str] = "sync.state"
    share_id: str
    local: str
    state: str
    message: str


@dataclass(frozen=True)
class ShareProgress(Event):
    kind: ClassVar[str] = "sync.progress"
    share_id: str
    done: int
    total: int


@dataclass(frozen=True)
class ShareChanged(Event):
    kind: ClassVar[str] = "sync.changed"
    share_id: str
    changes: tuple[str, ...]


@dataclass(frozen=True)
class SyncConflict(Event):
    kind: ClassVar[str] = "sync.conflict"
    share_id: str
    path: str
    copy: str
