"""The tray's Dask rows: "Dask cluster: 2 workers, 3 tasks running" in the main menu, and in each peer's submenu
whether that peer runs a worker.

The rows read the feature's ``view()``, which is what the node holds in memory (the scheduler's reports reach it
four times a second while anything changes); the menu is rebuilt on every show, so no RPC ever runs on the UI
thread. A cluster scheduled on a peer is known here only as far as this node takes part in it: its scheduler's
node and whether this machine runs a worker; ``noizylab dask status`` asks that peer for the rest.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMenu

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.services.dask.feature import DaskFeature
from noizylab_desktop.services.dask.view import DaskView
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def cluster_row(view: DaskView) -> str:
    """The main menu's row: the counts where the scheduler runs here, else where it runs and this machine's part."""
    if not view.running:
        return "Dask cluster: not running"
    if view.scheduler_here:
        workers = _count(len(view.workers), "worker") + (f" ({len(view.starting)} starting)" if view.starting else "")
        return f"Dask cluster: {workers}, {_count(view.running_tasks, 'task')} running"
    part = "this machine runs a worker" if view.worker_here else "started from here"
    return f"Dask cluster on {view.scheduler_name}: {part}"


def peer_row(view: DaskView, peer_id: str) -> str:
    """A peer's submenu row: whether it runs a worker (known where the scheduler runs), or "" for no row."""
    if view.scheduler_here:
        if peer_id in view.workers:
            return "Runs a Dask worker"
        return "Dask worker starting" if peer_id in view.starting else "Runs no Dask worker"
    if view.running and peer_id == view.scheduler_id:
        return "Runs the Dask scheduler"
    return ""


class DaskTray(TrayPart):
    """Dask rows, read from the feature on every menu rebuild."""

    def __init__(self, feature: DaskFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature

    def add_actions(self, menu: QMenu) -> None:
        menu.addAction(cluster_row(self.feature.view())).setEnabled(False)

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        row = peer_row(self.feature.view(), peer.peer.node_id)
        if row:
            menu.addAction(row).setEnabled(False)
