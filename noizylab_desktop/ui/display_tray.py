"""The display feature's part of the tray: ``Remote desktop → PEER``, the consent question, the sharing indicator.

While anyone views this screen a second tray icon (a red dot) stays up, and the main menu shows who is viewing
with a ``Stop sharing`` row; a peer's first request asks the person, with view only as the default answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.errors import NoizyLabError, PeerError
from noizylab_desktop.core.events import Event
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.trust import TrustedPeer
from noizylab_desktop.services.display.client import ViewerSession
from noizylab_desktop.services.display.events import ScreenShared, ScreenUnshared
from noizylab_desktop.services.display.feature import Consent, DisplayFeature
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.display_viewer import ViewerWindow, open_session
from noizylab_desktop.ui.extensions import TrayPart
from noizylab_desktop.ui.notify import Notifier
from noizylab_desktop.ui.step_up import step_up

logger = logging.getLogger(__name__)


def sharing_icon() -> QIcon:
    """A red dot: this screen is being viewed."""
    pixmap = QPixmap(32, 32)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(220, 40, 40))
    painter.setPen(QColor(255, 255, 255))
    painter.drawEllipse(4, 4, 24, 24)
    painter.end()
    return QIcon(pixmap)


class ConsentDialog(QMessageBox):
    """``PEER wants to see your screen``: Allow view only (default), Allow control too, or Decline."""

    def __init__(self, peer: TrustedPeer, wants_control: bool) -> None:
        super().__init__()
        self.setWindowTitle("NOIZYLAB — screen sharing")
        asks = "see and control" if wants_control else "see"
        self.setText(f"{peer.name} wants to {asks} this screen.")
        self.setInformativeText("Your answer is remembered; change it later in the tray under that device.")
        self.view_only = self.addButton("Allow view only", QMessageBox.ButtonRole.AcceptRole)
        self.control = self.addButton("Allow view and control", QMessageBox.ButtonRole.AcceptRole)
        self.decline = self.addButton("Decline", QMessageBox.ButtonRole.RejectRole)
        self.setDefaultButton(self.view_only)
        self.setEscapeButton(self.decline)

    def answer(self) -> Consent:
        clicked = self.clickedButton()
        if clicked is self.view_only:
            return Consent(view=True)
        if clicked is self.control:
            return Consent(view=True, control=True)
        return Consent(view=False)


class DisplayTray(TrayPart):
    """The tray part of the display feature."""

    def __init__(self, feature: DisplayFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self._ctx = ctx
        self.viewers: list[ViewerWindow] = []
        self.sharing: dict[int, ScreenShared] = {}
        self.dialogs: list[ConsentDialog] = []
        self.indicator = QSystemTrayIcon(sharing_icon())
        self.indicator_menu = QMenu()
        self.indicator_menu.addAction("Stop sharing this screen").triggered.connect(self.stop_sharing)
        self.indicator.setContextMenu(self.indicator_menu)
        self._feature = feature
        self.notifier = Notifier()
        feature.consent = self.ask
        bridge.any_event.connect(self._on_event)

    # ------------------------------------------------------------------ TrayPart

    def attach(self, icon: QSystemTrayIcon, retooltip: Callable[[], None]) -> None:
        self.notifier.icon = icon

    def add_actions(self, menu: QMenu) -> None:
        if self.sharing:
            names = ", ".join(sorted({s.name for s in self.sharing.values()}))
            row = menu.addAction(f"Screen shared with {names}")
            row.setIcon(sharing_icon())
            row.setEnabled(False)
            menu.addAction("Stop sharing this screen").triggered.connect(self.stop_sharing)
            menu.addSeparator()

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        action = menu.addAction(f"Remote desktop → {peer.peer.name}")
        action.setEnabled(peer.online)
        action.triggered.connect(lambda _=False, fp=peer.peer.fingerprint: self.open_viewer(fp))

    def close(self) -> None:
        for window in list(self.viewers):
            window.close()
        for dialog in list(self.dialogs):
            dialog.reject()
        self.indicator.hide()
        if self._feature.consent == self.ask:
            self._feature.consent = None

    # ------------------------------------------------------------------ viewing a peer

    def open_viewer(self, fingerprint: bytes) -> asyncio.Task[ViewerWindow | None]:
        """Open a viewer on that peer (a task: the window shows once the peer answered)."""
        return asyncio.ensure_future(self._open(fingerprint))

    async def _open(self, fingerprint: bytes) -> ViewerWindow | None:
        def again() -> ViewerSession:
            # The registry's channel at this moment: it follows the peer to the address it came back on.
            state = next((s for s in self._ctx.registry.peers() if s.peer.fingerprint == fingerprint), None)
            if state is None:
                raise PeerError("that peer is no longer paired with this machine")
            return ViewerSession(self._ctx.registry.channel(state), state.peer.name, control=True)

        try:
            session = await open_session(again)
        except PeerError:
            return None
        except NoizyLabError as exc:
            QMessageBox.warning(None, "NOIZYLAB — remote desktop", exc.message)
            return None
        window = ViewerWindow(session, lambda: open_session(again), self._feature.config.reconnect_s)
        self.viewers.append(window)
        window.finished.connect(lambda _why, w=window: self._forget(w))
        window.show()
        asyncio.ensure_future(window.run())
        return window

    def _forget(self, window: ViewerWindow) -> None:
        """The window's session ended: delete it here, on the GUI thread.

        Dropped to Python's collector instead, a window caught in a reference cycle is destroyed on whichever thread
        the collector happens to run (a decode, gRPC or ``to_thread`` worker), and Qt widgets die with a segfault there.
        """
        if window in self.viewers:
            self.viewers.remove(window)
        window.deleteLater()

    # ------------------------------------------------------------------ being viewed

    async def ask(self, peer: TrustedPeer, wants_control: bool) -> Consent:
        """Ask the person (the feature's consent hook); closing the dialog declines."""
        dialog = ConsentDialog(peer, wants_control)
        self.dialogs.append(dialog)
        answered: asyncio.Future[Consent] = asyncio.get_running_loop().create_future()

        def done(_result: int) -> None:
            if not answered.done():
                answered.set_result(dialog.answer())

        dialog.finished.connect(done)
        dialog.open()
        try:
            answer = await answered
        finally:
            self.dialogs.remove(dialog)
            dialog.deleteLater()
        if not answer.view:
            return answer
        # Allowing is remembered as the display (and control) permission: a grant, so a step-up when TOTP is on.
        refusal = await step_up(
            self._ctx.totp, "granting display and control" if answer.control else "granting display"
        )
        if refusal is not None:
            self.notifier.notify(f"Screen not shared with {peer.name}", refusal, warning=True)
            return Consent(view=False)
        return answer

    def stop_sharing(self) -> None:
        self._feature.end_all()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ScreenShared):
            self.sharing[event.session] = event
        elif isinstance(event, ScreenUnshared):
            self.sharing.pop(event.session, None)
        else:
            return
        if self.sharing:
            names = ", ".join(sorted({s.name for s in self.sharing.values()}))
            controls = any(s.control for s in self.sharing.values())
            self.indicator.setToolTip(f"NOIZYLAB — {names} {'controls' if controls else 'views'} this screen")
            self.indicator.show()
        else:
            self.indicator.hide()
