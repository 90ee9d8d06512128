"""What a feature adds to the tray: menu rows of its own and rows in each peer's submenu.

A feature's window (task console, dashboard, viewer...) is built by its extension, which listens to
``Bridge.any_event`` for the events its service publishes. Each feature adds one line to ``tray_extensions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from PySide6.QtWidgets import QMenu

from noizylab_desktop.services.registry import PeerState
from noizylab_desktop.ui.bridge import Bridge

if TYPE_CHECKING:
    from noizylab_desktop.node import Node


class TrayExtension(Protocol):
    """One feature's part of the tray; ``add_actions`` and ``add_peer_actions`` run on every menu rebuild."""

    def add_actions(self, menu: QMenu) -> None:
        """Rows in the main menu, between the peers and ``Pair a device…``."""

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        """Rows in one peer's submenu."""

    def close(self) -> None:
        """Close this feature's windows (the app is quitting)."""


def tray_extensions(node: Node, bridge: Bridge) -> list[TrayExtension]:
    """Every feature's tray part, in menu order."""
    extensions: list[TrayExtension] = []
    # features: one line each, e.g.
    # from noizylab_desktop.ui.task_console import TasksTray; extensions.append(TasksTray(node, bridge))
    extensions.append(_sync_tray(node, bridge))
    return extensions


def _sync_tray(node: Node, bridge: Bridge) -> TrayExtension:
    from noizylab_desktop.ui.sync_tray import SyncTray

    return SyncTray(node, bridge)
