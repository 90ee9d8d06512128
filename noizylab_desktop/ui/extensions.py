"""What a feature adds to the tray: menu rows of its own and rows in each peer's submenu.

A feature's window (task console, dashboard, viewer...) is built by its extension, which listens to
``Bridge.any_event`` for the events its service publishes. Each feature adds one line to ``EXTENSIONS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast

from PySide6.QtWidgets import QMenu

from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.ui.bridge import Bridge

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node


class TrayExtension(Protocol):
    """One feature's part of the tray; ``add_actions`` and ``add_peer_actions`` run on every menu rebuild."""

    def add_actions(self, menu: QMenu) -> None:
        """Rows in the main menu, between the peers and ``Pair a device…``."""

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        """Rows in one peer's submenu."""

    def close(self) -> None:
        """Close this feature's windows (the app is quitting)."""


# Menu order: module and class of each feature's tray part, built as ``cls(node, bridge)``.
EXTENSIONS = (
    ("noizylab_desktop.ui.tasks_console", "TasksTray"),
    ("noizylab_desktop.ui.metrics_dashboard", "MetricsTray"),
    ("noizylab_desktop.ui.clipboard_tray", "ClipboardTray"),
    ("noizylab_desktop.ui.display_tray", "DisplayTray"),
    ("noizylab_desktop.ui.sync_tray", "SyncTray"),
)


def tray_extensions(node: Node, bridge: Bridge) -> list[TrayExtension]:
    """Every feature's tray part, in menu order."""
    return [
        cast(TrayExtension, getattr(importlib.import_module(module), name)(node, bridge)) for module, name in EXTENSIONS
    ]
