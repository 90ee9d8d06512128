"""What a feature adds to the tray: menu rows of its own, rows in each peer's submenu, a tooltip line.

A feature's tray part is named in the one feature table (``node/features.py``, ``tray=``) and built as
``cls(feature, ctx, bridge)``: it gets its running feature, typed, and the node's narrow context, never the node.
Its windows (task console, dashboard, viewer...) listen to ``Bridge.any_event`` for the events its service publishes.
A node that does not run a feature gets no tray part for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.node.features import load, tray_parts
from noizylab_desktop.ui.bridge import Bridge

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.node.node import Node


class TrayPart:
    """One feature's part of the tray; every hook does nothing unless the part says otherwise."""

    def attach(self, icon: QSystemTrayIcon, retooltip: Callable[[], None]) -> None:
        """Called once with the tray icon (to notify through) and a callable that rebuilds the tooltip."""

    def add_actions(self, menu: QMenu) -> None:
        """Rows in the main menu, between the peers and ``Pair a device…`` (on every menu rebuild)."""

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        """Rows in one peer's submenu (on every menu rebuild)."""

    def tooltip_line(self) -> str:
        """A line for the tray's tooltip, or empty for none."""
        return ""

    def close(self) -> None:
        """Close this feature's windows (the app is quitting)."""


class TrayPartFactory(Protocol):
    """A tray part's class: built from its feature (each class types its own), the context and the bridge."""

    def __call__(self, feature: Any, ctx: NodeContext, bridge: Bridge) -> TrayPart: ...


def tray_extensions(node: Node, bridge: Bridge) -> list[TrayPart]:
    """The tray part of every feature this node runs, in the feature table's order."""
    parts = []
    for name, ref in tray_parts():
        feature = node.features.get(name)
        if feature is not None:
            parts.append(cast(TrayPartFactory, load(ref))(feature, node.ctx, bridge))
    return parts
