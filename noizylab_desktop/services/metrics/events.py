"""The metrics feature's events on the node's bus (the dashboard and the tray listen through the bridge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import Event


@dataclass(frozen=True)
class MetricsUpdated(Event):
    """A new cluster view is ready (once per sample); read it from the feature, it is too big for an event."""

    kind: ClassVar[str] = "metrics.updated"


@dataclass(frozen=True)
class MetricsAlert(Event):
    """A node went down, a disk is nearly full or a GPU runs hot; published once when it starts.

    It comes from the cluster view, which only this node's own user may read (``Metrics.Cluster``), so it stays here.
    """

    kind: ClassVar[str] = "metrics.alert"
    node: str
    what: str
    message: str
