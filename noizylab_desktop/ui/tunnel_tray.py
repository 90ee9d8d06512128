"""The tray's tunnel rows: each tunnel (open it in the browser, stop it), and in each peer's submenu
"Open on PEER…" with the usual GPU-box web apps, which forwards the port and opens it in the browser.

Which ports a peer may open here is the serving side's business (``noizylab tunnel allow``); the peer submenu's
"Open tunnels to this machine's local ports" switch is the ``tunnel`` permission itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.services.tunnel.feature import TunnelFeature
from noizylab_desktop.services.tunnel.forward import Forwarder
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart
from noizylab_desktop.ui.notify import Notifier

logger = logging.getLogger(__name__)

PRESETS = (("Jupyter", 8888), ("ComfyUI", 8188), ("Gradio", 7860), ("TensorBoard", 6006), ("Ollama", 11434))


def tunnel_row(forwarder: Forwarder, peer_name: str) -> str:
    """``beta:8888 on localhost:8888 (open, 2 connections)``."""
    host = "localhost" if forwarder.record.bind == "127.0.0.1" else forwarder.record.bind
    open_now = len(forwarder.connections)
    extra = f", {open_now} connection{'s' if open_now != 1 else ''}" if open_now else ""
    return f"{peer_name}:{forwarder.record.port} on {host}:{forwarder.record.local_port} ({forwarder.state}{extra})"


def url(forwarder: Forwarder) -> QUrl:
    host = "127.0.0.1" if forwarder.record.bind in ("127.0.0.1", "0.0.0.0", "::") else forwarder.record.bind
    return QUrl(f"http://{host}:{forwarder.record.local_port}/")


class TunnelTray(TrayPart):
    """Tunnel rows; the menu is rebuilt on every show, so rows always read the feature."""

    def __init__(self, feature: TunnelFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.ctx = ctx
        self.notice = ""
        self.opened: list[QUrl] = []  # what the tray asked the browser to open (tests read it)
        self.open_url: Callable[[QUrl], object] = QDesktopServices.openUrl
        self.notifier = Notifier()
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, icon: QSystemTrayIcon, retooltip: Callable[[], None]) -> None:
        self.notifier.icon = icon

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_actions(self, menu: QMenu) -> None:
        for forwarder in list(self.feature.forwarders.values()):
            peer = self.ctx.trust.get(forwarder.fp)
            name = peer.name if peer is not None else "?"
            sub = menu.addMenu(tunnel_row(forwarder, name))
            sub.addAction("Open in browser").triggered.connect(lambda _=False, f=forwarder: self._browse(f))
            sub.addAction("Stop tunnel").triggered.connect(lambda _=False, f=forwarder: self._spawn(self._stop(f)))
            if forwarder.last_error:
                sub.addAction(forwarder.last_error).setEnabled(False)
        if self.notice:
            menu.addAction(f"Tunnel: {self.notice}").setEnabled(False)

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        sub = menu.addMenu(f"Open on {peer.peer.name}…")
        for label, port in PRESETS:
            sub.addAction(f"{label} ({port})").triggered.connect(
                lambda _=False, p=port: self._spawn(self.open_on(peer.peer.node_id, p))
            )

    async def open_on(self, peer_id: str, port: int) -> None:
        """Forward the peer's ``port`` (or reuse the tunnel) and open it in the browser."""
        try:
            forwarder = await self.feature.forward(peer_id, port)
        except NoizyLabError as exc:
            self._tell(exc.message)
            return
        self.notice = ""
        self._browse(forwarder)

    def _browse(self, forwarder: Forwarder) -> None:
        self.opened.append(url(forwarder))
        self.open_url(url(forwarder))

    async def _stop(self, forwarder: Forwarder) -> None:
        try:
            await self.feature.stop_forward(format_id(forwarder.fp), forwarder.record.port)
        except NoizyLabError as exc:
            self._tell(exc.message)

    def _tell(self, message: str) -> None:
        self.notice = message
        logger.info("tunnel: %s", message)
        self.notifier.notify("Tunnel", message, warning=True)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
