"""The tray's file rows: "Send a file…" in each peer's submenu, a row for a send under way, and a notification when
a file arrives from a peer (with where it was saved) or one sent here got there.

Sending runs on the node's loop (``FilesFeature.send``); the menu reads the latest progress on every show.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMenu, QSystemTrayIcon

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.words import size
from noizylab_desktop.services.files.events import FileArrived, FileSent
from noizylab_desktop.services.files.feature import FilesFeature
from noizylab_desktop.services.files.send import Progress
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart
from noizylab_desktop.ui.notify import Notifier

logger = logging.getLogger(__name__)

SEND_ROW = "Send a file…"


def sending_row(peer_name: str, progress: Progress) -> str:
    """``Sending film.mov to beta: 42% (1.2 GB of 2.9 GB)``."""
    percent = 100 * progress.sent // max(progress.size, 1)
    return f"Sending {progress.name} to {peer_name}: {percent}% ({size(progress.sent)} of {size(progress.size)})"


class FilesTray(TrayPart):
    """Send rows and arrival notifications."""

    def __init__(self, feature: FilesFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.ctx = ctx
        self.notifier = Notifier()
        self.sending: dict[str, tuple[str, Progress]] = {}  # path -> (peer name, progress), while under way
        # Asks for the file to send (a test replaces the dialog with a path of its own).
        self.choose_file: Callable[[str], str] = lambda peer: QFileDialog.getOpenFileName(
            None, f"Send a file to {peer}"
        )[0]
        self._tasks: set[asyncio.Task[None]] = set()
        bridge.any_event.connect(self._on_event)

    def attach(self, icon: QSystemTrayIcon, retooltip: Callable[[], None]) -> None:
        self.notifier.icon = icon

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_actions(self, menu: QMenu) -> None:
        for peer_name, progress in list(self.sending.values()):
            menu.addAction(sending_row(peer_name, progress)).setEnabled(False)

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        action = menu.addAction(SEND_ROW)
        action.triggered.connect(lambda _=False: self.ask_and_send(peer.peer.node_id, peer.peer.name))
        if not peer.online:
            action.setEnabled(False)
            action.setToolTip(f"{peer.peer.name} is offline")

    def ask_and_send(self, peer_id: str, peer_name: str) -> None:
        """Ask for a file, then send it to the peer."""
        chosen = self.choose_file(peer_name)
        if chosen:
            self._spawn(self.send(peer_id, peer_name, Path(chosen)))

    async def send(self, peer_id: str, peer_name: str, path: Path) -> None:
        """Send ``path`` to the peer, showing progress in the menu and the outcome as a notification."""
        key = str(path)
        self.sending[key] = (peer_name, Progress(path.name, 0, 0))

        def report(progress: Progress) -> None:
            self.sending[key] = (peer_name, progress)

        try:
            await self.feature.send(peer_id, path, report)
        except NoizyLabError as exc:
            self.notifier.notify("File not sent", exc.message, warning=True)
        finally:
            self.sending.pop(key, None)

    def _on_event(self, event: object) -> None:
        if isinstance(event, FileArrived):
            self.notifier.notify(
                f"{event.peer_name} sent you {event.name}", f"{size(event.size)}, saved in {Path(event.path).parent}"
            )
        elif isinstance(event, FileSent):
            extra = f" (saved as {event.saved_as})" if event.saved_as != event.name else ""
            self.notifier.notify(f"Sent {event.name} to {event.peer_name}", f"{size(event.size)}{extra}")

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
