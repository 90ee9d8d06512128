"""Folder sync in the tray: a ``Folder sync`` submenu with each share's state, progress of large transfers, recent
changes and conflicts (unresolved text conflicts open the merge dialog), pause/resume and open-folder rows, and
``Share a folder with PEER…`` in each peer's submenu.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMenu

from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.events import Event
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.words import plural
from noizylab_desktop.services.sync.events import ShareChanged, SyncConflict
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.sync.engine import ShareEngine
    from noizylab_desktop.services.sync.feature import SyncFeature
    from noizylab_desktop.services.sync.manager import ShareManager
    from noizylab_desktop.services.sync.resolve import Conflict, Resolver
    from noizylab_desktop.ui.sync_merge import MergeDialog

logger = logging.getLogger(__name__)


def share_label(local: str, peer: str, state: str, message: str, done: int, total: int) -> str:
    """One share's menu row: its folder, the peer, its state and, for large transfers, the progress."""
    progress = f" {100 * done // total}%" if state == "syncing" and total >= 8 * 1024 * 1024 else ""
    return f"{Path(local).name} ↔ {peer}: {state}{progress} ({message})"


class SyncTray(TrayPart):
    """The tray part of folder sync."""

    def __init__(self, feature: SyncFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.recent: collections.deque[str] = collections.deque(maxlen=8)
        self.conflicts: collections.deque[str] = collections.deque(maxlen=8)
        self.last_error = ""
        self.dialogs: dict[str, MergeDialog] = {}
        bridge.any_event.connect(self._on_event)

    @property
    def manager(self) -> ShareManager:
        return self.feature.manager

    @property
    def resolver(self) -> Resolver:
        return self.feature.resolver

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ShareChanged):
            self.recent.extendleft(event.changes[:8])
        elif isinstance(event, SyncConflict):
            self.conflicts.appendleft(event.copy)

    def add_actions(self, menu: QMenu) -> None:
        manager = self.manager
        shares = manager.store.shares()
        served = self.feature.served()
        if not shares and not served:
            return  # the way in is "Share a folder with PEER…" in a device's submenu
        sub = menu.addMenu("Folder sync")
        open_conflicts = self.feature.unresolved()
        for share in shares:
            engine = manager.engines.get(share.id)
            info = self.feature.info_of(share, open_conflicts)
            state, message = (info.state, info.message) if info.state else ("waiting for peer", "")
            done, total = (engine.progress.done, engine.progress.total) if engine else (0, 0)
            row = sub.addMenu(share_label(share.local, share.peer_name, state, message, done, total))
            row.addAction("Open folder").triggered.connect(
                lambda _=False, p=share.local: QDesktopServices.openUrl(QUrl.fromLocalFile(p))
            )
            verb = "Resume" if share.paused else "Pause"
            row.addAction(verb).triggered.connect(
                lambda _=False, s=share.id, pause=not share.paused: self._set_paused(s, pause)
            )
            if engine is not None:
                self._add_details(row, engine, info.conflicts)
        for offer in served:
            label = f"{Path(offer.local).name} ← {offer.peer}'s share, served here: {offer.state} ({offer.message})"
            sub.addMenu(label).addAction("Open folder").triggered.connect(
                lambda _=False, p=offer.local: QDesktopServices.openUrl(QUrl.fromLocalFile(p))
            )
        if self.recent:
            sub.addSeparator()
            sub.addAction("Recent changes").setEnabled(False)
            for change in list(self.recent)[:5]:
                sub.addAction(f"  {change}").setEnabled(False)
        unresolved = self.resolver.conflicts() if self.resolver is not None else []
        if unresolved:
            sub.addSeparator()
            sub.addAction("Conflicts to resolve").setEnabled(False)
            for conflict in unresolved[:8]:
                r = conflict.record
                label = f"  {Path(conflict.local).name}/{r.path} ({r.file_from} ↔ {r.copy_from})…"
                sub.addAction(label).triggered.connect(lambda _=False, c=conflict: self.open_conflict(c))
        copies = [c for c in self.conflicts if c not in {u.record.copy for u in unresolved}]
        if copies:
            sub.addSeparator()
            sub.addAction("Conflicts (both versions kept)").setEnabled(False)
            for copy in copies[:5]:
                sub.addAction(f"  {copy}").setEnabled(False)
        if self.last_error:
            sub.addSeparator()
            sub.addAction(self.last_error).setEnabled(False)

    def _add_details(self, row: QMenu, engine: ShareEngine, conflicts: int) -> None:
        row.addSeparator()
        row.addAction(f"{plural(engine.files, 'file')}, {plural(conflicts, 'conflict')}").setEnabled(False)
        for path, why in list(engine.failed.items())[:3]:
            row.addAction(f"not synced: {path}: {why}").setEnabled(False)

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        menu.addAction(f"Share a folder with {peer.peer.name}…").triggered.connect(
            lambda _=False, name=peer.peer.node_id: self._pick_and_share(name)
        )

    def _set_paused(self, share_id: str, paused: bool) -> None:
        manager = self.manager
        try:
            manager.set_paused(share_id, paused, allow_deletes=False)
        except NoizyLabError as exc:
            self.last_error = exc.message

    def _pick_and_share(self, peer_id: str) -> None:
        folder = QFileDialog.getExistingDirectory(None, "Choose a folder to keep in sync")
        if folder:
            asyncio.ensure_future(self.share(folder, peer_id))

    async def share(self, folder: str, peer_id: str) -> None:
        """Add a share (the folder's name in the peer's sync folder); a failure shows as one line in the menu."""
        manager = self.manager
        try:
            await manager.add(folder, peer_id, "", "")
            self.last_error = ""
        except NoizyLabError as exc:
            self.last_error = exc.message
            logger.warning("could not share %s: %s", folder, exc.message)

    def open_conflict(self, conflict: Conflict) -> MergeDialog | None:
        """Show the merge dialog for one conflict (raising it if it is already open)."""
        from noizylab_desktop.ui.sync_merge import MergeDialog

        resolver = self.resolver
        dialog = self.dialogs.get(conflict.record.id)
        if dialog is None:
            dialog = MergeDialog(resolver, conflict)
            dialog.finished.connect(lambda _=0, cid=conflict.record.id: self.dialogs.pop(cid, None))
            self.dialogs[conflict.record.id] = dialog
            asyncio.ensure_future(dialog.load())
        dialog.show()
        dialog.raise_()
        return dialog

    def close(self) -> None:
        """Close any open merge dialogs."""
        for dialog in list(self.dialogs.values()):
            dialog.close()
        self.dialogs.clear()
