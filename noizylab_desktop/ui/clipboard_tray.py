"""The tray's clipboard rows: "Pause clipboard sync" (one click, remembered), the last clip and any notice.

Per peer, the peer submenu's "Exchange clipboard contents" switch is the ``clipboard`` permission, which is what
``noizylab clip on|off PEER`` turns too. This extension also hands the Qt clipboard to the service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMenu

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.events import Event
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.services.clipboard.events import ClipArrived, ClipNotice
from noizylab_desktop.services.clipboard.feature import ClipboardFeature
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.clipboard_qt import QtClipboardBackend
from noizylab_desktop.ui.extensions import TrayPart

logger = logging.getLogger(__name__)

PAUSE = "Pause clipboard sync"


def last_clip_row(feature: ClipboardFeature) -> str:
    """``Last clip from beta at 14:05`` (this node's own name for a local copy), or empty before any."""
    if not feature.last_at:
        return ""
    return f"Last clip from {feature.last_from} at {time.strftime('%H:%M', time.localtime(feature.last_at))}"


class ClipboardTray(TrayPart):
    """Clipboard rows in the tray menu; the menu is rebuilt on every show, so rows always read the feature."""

    def __init__(self, feature: ClipboardFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.notice = ""
        self._tasks: set[asyncio.Task[None]] = set()
        bridge.any_event.connect(self._on_event)
        self._spawn(feature.use_backend(QtClipboardBackend(QGuiApplication.clipboard())))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ClipNotice):
            self.notice = event.message
        elif isinstance(event, ClipArrived):
            self.notice = ""

    def add_actions(self, menu: QMenu) -> None:
        feature = self.feature
        pause = menu.addAction(PAUSE)
        pause.setCheckable(True)
        pause.setChecked(feature.settings.paused)
        pause.toggled.connect(lambda paused: self._spawn(feature.set_paused(paused)))
        last = last_clip_row(feature)
        if last:
            menu.addAction(last).setEnabled(False)
        if self.notice:
            menu.addAction(f"Clipboard: {self.notice}").setEnabled(False)

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        if self.feature.outbox is not None and self.feature.outbox.pending(peer.peer.fingerprint):
            menu.addAction("A clip waits for it to come back").setEnabled(False)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
