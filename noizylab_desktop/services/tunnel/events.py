"""What the tunnel service tells the tray: a tunnel was opened, stopped, or changed state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import Event


@dataclass(frozen=True)
class TunnelChanged(Event):
    """A tunnel to ``peer_name``'s ``remote_port`` is now ``state`` (its message names ports: this node only)."""

    kind: ClassVar[str] = "tunnel.changed"
    peer_id: str
    peer_name: str
    remote_port: int
    local_port: int
    state: str
