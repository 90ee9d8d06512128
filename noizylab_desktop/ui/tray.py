"""The tray icon and its menu: this node, each peer with its health, ``Check connections…`` (once a peer is paired),
``Pair a device…``, the ``Start at login`` switch (the state the OS has, read at every rebuild), ``Settings…``,
``About NOIZYLAB`` and ``Quit``.

Each peer's row opens a submenu: what that peer may do on this machine (permission switches, all off for a new
peer) and whatever the features add for it (``ui/extensions.py``).

The menu is rebuilt from the registry whenever it is about to show and whenever the bridge reports a peer change,
so it never shows stale health; the tooltip and the icon follow the same changes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QCursor
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QSystemTrayIcon

from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.nodeid import short_id
from noizylab_desktop.core.permissions import SCOPES, SENSITIVE_SCOPES
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.trust import TrustedPeer
from noizylab_desktop.core.words import plural
from noizylab_desktop.node.autostart import Autostart, AutostartStatus, for_platform
from noizylab_desktop.ui.about_box import AboutBox
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.doctor_dialog import DoctorDialog
from noizylab_desktop.ui.extensions import tray_extensions
from noizylab_desktop.ui.icons import app_icon, health_dot
from noizylab_desktop.ui.notify import Notifier
from noizylab_desktop.ui.pairing_dialog import PairingDialog
from noizylab_desktop.ui.settings_window import SettingsWindow
from noizylab_desktop.ui.step_up import step_up

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node

APP_NAME = "NOIZYLAB"
START_AT_LOGIN = "Start at login"


def autostart_label(status: AutostartStatus) -> str:
    """The switch's row: ``Start at login``, with what still stands between it and starting, if anything."""
    if status.state == "needs approval":
        return f"{START_AT_LOGIN} (needs approval in System Settings)"
    if status.state == "disabled":
        return f"{START_AT_LOGIN} (switched off in Task Manager)"
    return START_AT_LOGIN


def summary(peers: Sequence[PeerState]) -> str:
    """The tooltip's one line, e.g. ``NOIZYLAB — 1 of 2 peers online``."""
    if not peers:
        return f"{APP_NAME} — no paired devices yet"
    online = sum(1 for p in peers if p.online)
    return f"{APP_NAME} — {online} of {plural(len(peers), 'peer')} online"


def peer_label(state: PeerState) -> str:
    """A peer's menu row: its name and its health in words, for those who cannot tell the dots apart."""
    if state.removed:
        return f"{state.peer.name} — removed this machine"
    if state.refusal == "unpaired":
        return f"{state.peer.name} — no longer accepts this machine"
    if state.refusal == "handshake":
        return f"{state.peer.name} — may have removed this machine"
    if not state.online:
        return f"{state.peer.name} — offline"
    return f"{state.peer.name} — online, {state.rtt_ms:.0f} ms"


class Tray(QObject):
    """The tray icon of one node; ``quit`` is called when the person picks Quit."""

    def __init__(self, node: Node, bridge: Bridge, quit: Callable[[], None]) -> None:
        super().__init__()
        self._node = node
        self._quit = quit
        self._any_online: bool | None = None
        self.menu = QMenu()
        self.icon = QSystemTrayIcon(app_icon(False))
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self.notifier = Notifier(self.icon)
        # Asks for this machine's new name (None: cancelled), and whether to unpair a peer; a test answers instead.
        self.ask_name: Callable[[str], str | None] = self._ask_name
        self.confirm: Callable[[str], bool] = self._confirm
        self._tasks: set[asyncio.Task[None]] = set()
        self.pairing = PairingDialog(node)
        self.doctor = DoctorDialog(node)
        # Where this home's start at login is set (a test points it at a folder of its own).
        self.autostart: Autostart = for_platform(node.paths)
        self.settings_window = SettingsWindow(node)
        self.settings_window.saved.connect(lambda _line: self.refresh())  # the name may have changed
        self.about = AboutBox(node)
        self.extensions = tray_extensions(node, bridge)
        for extension in self.extensions:
            extension.attach(self.icon, self.refresh_tooltip)
        self.menu.aboutToShow.connect(self.refresh)
        for signal in (bridge.peer_online, bridge.peer_offline, bridge.peer_unpaired):
            signal.connect(self._on_peer_change)
        bridge.peer_paired.connect(self._on_paired)
        self.refresh()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        """Take the icon out of the tray and close the dialog."""
        self.pairing.reject()
        for task in self._tasks:
            task.cancel()
        self.doctor.reject()
        self.settings_window.reject()
        self.about.reject()
        for extension in self.extensions:
            extension.close()
        self.icon.hide()

    def refresh(self) -> None:
        """Rebuild the menu, tooltip and icon from the registry as it is now."""
        peers = self._node.registry.peers()
        self.menu.clear()
        me = self.menu.addAction(f"{self._node.settings.name} ({short_id(self._node.identity.node_id)})")
        me.setToolTip(self._node.identity.node_id)
        me.setEnabled(False)
        self.menu.addSeparator()
        if not peers:
            self.menu.addAction("No paired devices yet").setEnabled(False)
        for state in peers:
            self._add_peer(state)
        self.menu.addSeparator()
        for extension in self.extensions:
            extension.add_actions(self.menu)
        self.menu.addAction("Rename this machine…").triggered.connect(self.rename)
        if peers:
            self.menu.addAction("Check connections…").triggered.connect(self.doctor.open_fresh)
        self.menu.addAction("Pair a device…").triggered.connect(self.open_pairing)
        self.menu.addSeparator()
        self._add_autostart()
        self.menu.addAction("Settings…").triggered.connect(self.settings_window.open_fresh)
        self.menu.addAction(f"About {APP_NAME}").triggered.connect(self.about.open_fresh)
        self.menu.addAction(f"Quit {APP_NAME}").triggered.connect(self._quit)
        self.refresh_tooltip(peers)
        any_online = any(p.online for p in peers)
        if any_online != self._any_online:  # setIcon re-sends the image to the tray host; skip when unchanged
            self._any_online = any_online
            self.icon.setIcon(app_icon(any_online))

    def _add_autostart(self) -> None:
        try:
            status = self.autostart.status()
        except NoizyLabError as exc:
            self.menu.addAction(f"{START_AT_LOGIN}: {exc.message}").setEnabled(False)
            return
        switch = self.menu.addAction(autostart_label(status))
        switch.setCheckable(True)
        switch.setChecked(status.on)
        switch.setToolTip(status.hint or status.where)
        switch.toggled.connect(self.set_autostart)

    def set_autostart(self, on: bool) -> None:
        """Turn start at login on or off; a refusal, or macOS waiting for approval, is said in a notification."""
        try:
            status = self.autostart.enable() if on else self.autostart.disable()
        except NoizyLabError as exc:
            self.notifier.notify(f"{START_AT_LOGIN} not changed", exc.message, warning=True)
        else:
            if status.hint:
                self.notifier.notify(START_AT_LOGIN, status.hint[0].upper() + status.hint[1:])
        # The menu shows the state the OS has afresh the next time it opens (``aboutToShow``).

    def refresh_tooltip(self, peers: Sequence[PeerState] | None = None) -> None:
        """The tray's summary line, then any line the extensions add (``tooltip_line``)."""
        lines = [summary(self._node.registry.peers() if peers is None else peers)]
        lines += [line for e in self.extensions if (line := e.tooltip_line())]
        self.icon.setToolTip("\n".join(lines))

    def _add_peer(self, state: PeerState) -> None:
        submenu = self.menu.addMenu(health_dot(state.online), peer_label(state))
        row = submenu.menuAction()
        row.setToolTip(state.peer.node_id)
        row.setData(state.peer.node_id)
        header = submenu.addAction(f"{state.peer.name} may:")
        header.setEnabled(False)
        allowed = self._node.permissions.for_peer(state.peer.fingerprint)
        for scope, meaning in SCOPES.items():
            switch: QAction = submenu.addAction(meaning[0].upper() + meaning[1:])
            switch.setCheckable(True)
            switch.setChecked(allowed[scope])
            switch.setData(scope)
            switch.toggled.connect(lambda on, scope=scope, peer=state.peer: self.toggle(peer, scope, on))
        submenu.addSeparator()
        for extension in self.extensions:
            extension.add_peer_actions(submenu, state)
        submenu.addSeparator()
        name, peer_id = state.peer.name, state.peer.node_id
        submenu.addAction(f"Unpair {name}…").triggered.connect(lambda _=False: self.unpair(peer_id, name))
        # Unpair forgets the peer here only; these reach every member of the grid (docs/trust.md).
        submenu.addAction("Remove this device…").triggered.connect(
            lambda _=False: self.remove_device(peer_id, name, lost=False)
        )
        submenu.addAction("Mark this device lost…").triggered.connect(
            lambda _=False: self.remove_device(peer_id, name, lost=True)
        )

    @staticmethod
    def _ask_name(current: str) -> str | None:
        text, ok = QInputDialog.getText(None, f"Rename {current}", "This machine's name, as its peers will see it:",
                                        text=current)  # fmt: skip
        return text if ok else None

    def rename(self) -> None:
        """Ask for a new name and take it: saved, and paired machines learn it with the next heartbeat."""
        wanted = self.ask_name(self._node.settings.name)
        if wanted is None:
            return
        try:
            self._node.rename(wanted)
        except NoizyLabError as exc:
            self.notifier.notify("Not renamed", exc.message, warning=True)
        self.refresh()

    @staticmethod
    def _confirm(question: str) -> bool:
        answer = QMessageBox.question(None, APP_NAME, question)
        return answer == QMessageBox.StandardButton.Yes

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def toggle(self, peer: TrustedPeer, scope: str, on: bool) -> None:
        """A permission switch changed: take it at once, unless it grants what asks for a TOTP code first."""
        if on and scope in SENSITIVE_SCOPES and self._node.totp.enabled():
            self._spawn(self.set_permission(peer, scope, on))
        else:
            self._node.permissions.set(peer.fingerprint, scope, on, peer.node_id)

    async def set_permission(self, peer: TrustedPeer, scope: str, on: bool) -> None:
        """Turn a peer's permission on or off; granting a sensitive one asks for a TOTP code when TOTP is on (and
        the menu shows the switch off again when none is given)."""
        if on and scope in SENSITIVE_SCOPES:
            refusal = await step_up(self._node.totp, f"granting {scope}")
            if refusal is not None:
                self.notifier.notify(f"{peer.name} not allowed {scope}", refusal, warning=True)
                self.refresh()
                return
        self._node.permissions.set(peer.fingerprint, scope, on, peer.node_id)

    def unpair(self, peer_id: str, name: str) -> None:
        """Ask, then forget the peer (it is told, and shows that this machine removed it)."""
        if self.confirm(f"Unpair {name}? It will no longer reach this machine, and {name} will say so."):
            self._spawn(self._unpair(peer_id))

    async def _unpair(self, peer_id: str) -> None:
        refusal = await step_up(self._node.totp, "removing a device")
        if refusal is not None:
            self.notifier.notify("Not unpaired", refusal, warning=True)
            return
        try:
            await self._node.unpair(peer_id)
        except NoizyLabError as exc:
            self.notifier.notify("Not unpaired", exc.message, warning=True)
        self.refresh()

    def remove_device(self, peer_id: str, name: str, *, lost: bool) -> None:
        """Ask, then remove the peer from the whole grid (every member refuses it); lost also revokes what it knew."""
        question = (
            f"Remove {name} from the grid? Every member will refuse it from now on, and what it has open ends."
            if not lost
            else f"Mark {name} lost? Every member will refuse it from now on, and API tokens and open invite codes "
            f"are revoked. Files already on {name}'s disk remain there."
        )
        if self.confirm(question):
            self._spawn(self._remove_device(peer_id, name, lost))

    async def _remove_device(self, peer_id: str, name: str, lost: bool) -> None:
        refusal = await step_up(self._node.totp, "removing a device")
        if refusal is not None:
            self.notifier.notify(f"{name} not removed", refusal, warning=True)
            return
        try:
            removed, rotated = await self._node.remove_device(peer_id, lost)
        except NoizyLabError as exc:
            self.notifier.notify(f"{name} not removed", exc.message, warning=True)
        else:
            said = f"Every member refuses {removed.name or name} now."
            if lost:
                said += f" Revoked {rotated.tokens} API tokens and {rotated.invites} open invite codes here."
            self.notifier.notify(f"{removed.name or name} removed from the grid", said)
        self.refresh()

    def open_pairing(self) -> None:
        """Show ``Pair a device…`` with a fresh code."""
        self.pairing.open_fresh()

    def _on_peer_change(self, peer_id: str, name: str) -> None:
        self.refresh()

    def _on_paired(self, peer_id: str, name: str, verification: str) -> None:
        self.refresh()
        if not self.pairing.isVisible():
            # A code stays valid after its dialog is closed; the person still needs the string to compare.
            self.notifier.notify(f"Paired with {name}", f"Verification: {verification}")

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # macOS opens the menu on any click; elsewhere a left click would otherwise do nothing.
        if reason == QSystemTrayIcon.ActivationReason.Trigger and sys.platform != "darwin":
            self.menu.popup(QCursor.pos())
