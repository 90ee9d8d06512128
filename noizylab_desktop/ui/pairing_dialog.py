"""``Pair a device…``: show a fresh invite code and wait for the other machine, or join with its code.

The join side also lists the machines nearby whose ``pair invite`` is open (heard by discovery, refreshed every
second while the dialog shows). Picking one never replaces the code: it must still be typed, must come from the
machine picked, and proves its secret as a typed code alone does (``core/discovery/choose.py``).

The code is shown as text and as a QR code (segno, which the TOTP setup already uses). Where TOTP is on, making a
code and joining one ask for an authenticator code first, as ``noizylab pair invite|join`` do (``docs/trust.md``):
a step-up then holds for five minutes, so the next sensitive action asks for none.

The first-run window (``ui/first_run.py``) embeds this dialog as its pairing step (``embedded=True``: no Close).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING

import segno
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from noizylab_desktop.core.discovery.choose import code_for
from noizylab_desktop.core.discovery.records import Announcement
from noizylab_desktop.core.errors import NoizyLabError, StepUpNeeded
from noizylab_desktop.core.pairing import Paired
from noizylab_desktop.core.words import plural
from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.qt_async import async_slot
from noizylab_desktop.ui.step_up import step_up

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node

logger = logging.getLogger(__name__)

NEARBY_REFRESH_MS = 1000
NO_ONE_NEARBY = "No machine nearby is inviting (run Pair a device… or `noizylab pair invite` on it)"
ERROR_STYLE = "color: #cf222e;"
SUCCESS_STYLE = "color: #1a7f37;"
QR_SCALE = 4
TOTP_ASK = "TOTP is on: type the code from your authenticator app in the field above, then press Enter"


def one_line(message: str) -> str:
    """``message`` as one sentence-cased line, however it arrived."""
    line = " ".join(message.split())
    return line[:1].upper() + line[1:]


def paired_text(paired: Paired) -> str:
    """What both sides show once paired."""
    return f"Paired with {paired.peer_name}. Verification: {paired.verification} (the other machine shows the same)"


def qr_pixmap(text: str, scale: int = QR_SCALE) -> QPixmap:
    """``text`` as a QR code image (medium error correction, the standard quiet zone)."""
    png = io.BytesIO()
    segno.make(text, error="m").save(png, kind="png", scale=scale, border=4)
    pixmap = QPixmap()
    pixmap.loadFromData(png.getvalue(), "PNG")
    return pixmap


def _code_font() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSizeF(font.pointSizeF() * 1.25)
    font.setBold(True)
    return font


class PairingDialog(QDialog):
    """Invite another machine with a one-time code, or join one; both end by showing the verification string."""

    code_shown = Signal(str)  # a fresh invite code is on screen
    invite_paired = Signal(str, str)  # peer name, verification: someone joined with our code
    invite_failed = Signal(str)  # one-line message
    joined = Signal(str, str)  # peer name, verification: we joined another machine's code
    join_failed = Signal(str)  # one-line message
    nearby_changed = Signal(int)  # how many machines nearby are inviting, when the list changes
    totp_asked = Signal(str)  # the action waits for a TOTP code: "invite" or "join"

    def __init__(self, node: Node, parent: QWidget | None = None, *, embedded: bool = False) -> None:
        super().__init__(parent)
        self._node = node
        self._embedded = embedded
        self._invite_task: asyncio.Task[None] | None = None
        self.paired: Paired | None = None  # the last pairing this dialog made, either way
        self._waiting_for_code = ""  # "invite" or "join" while the TOTP field waits for a code
        self.setWindowTitle("Pair a device — NOIZYLAB")
        self.setWindowIcon(app_icon(False))
        self.setMinimumWidth(520)

        self.code_label = QLabel("…")
        self.code_label.setFont(_code_font())
        self.code_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.qr_label = QLabel()
        self.qr_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr_label.setToolTip("The same invite code as a QR code")
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self._copy_code)
        self.expiry_label = QLabel("")
        self.invite_status = QLabel("")
        self.invite_status.setWordWrap(True)
        self.new_code_button = QPushButton("New code")
        self.new_code_button.clicked.connect(self.new_invite)

        self.code_field = QLineEdit()
        self.code_field.setPlaceholderText("XXXXX-XXXXX-…")
        self.code_field.returnPressed.connect(self.join)
        self.join_button = QPushButton("Join")
        self.join_button.clicked.connect(self.join)
        self.join_status = QLabel("")
        self.join_status.setWordWrap(True)

        self.totp_label = QLabel("Code from your authenticator app:")
        self.totp_field = QLineEdit()
        self.totp_field.setPlaceholderText("123456")
        self.totp_field.setMaxLength(16)
        self.totp_field.returnPressed.connect(self._code_given)
        self.totp_label.hide()
        self.totp_field.hide()

        self.nearby_list = QListWidget()
        self.nearby_list.setMaximumHeight(96)
        self.nearby_list.itemClicked.connect(lambda _item: self.code_field.setFocus())
        self._nearby: list[Announcement] = []
        self._nearby_timer = QTimer(self)
        self._nearby_timer.setInterval(NEARBY_REFRESH_MS)
        self._nearby_timer.timeout.connect(self.refresh_nearby)

        self._lay_out()

    def _lay_out(self) -> None:
        invite_box = QGroupBox("Invite another machine")
        invite = QVBoxLayout(invite_box)
        invite.addWidget(QLabel("Type this code on the other machine (or run <tt>noizylab pair join CODE</tt> there):"))
        code_row = QHBoxLayout()
        code_row.addWidget(self.code_label, 1)
        code_row.addWidget(self.copy_button)
        invite.addLayout(code_row)
        invite.addWidget(self.qr_label)
        invite.addWidget(self.expiry_label)
        invite.addWidget(self.invite_status)
        again = QHBoxLayout()
        again.addStretch(1)
        again.addWidget(self.new_code_button)
        invite.addLayout(again)

        join_box = QGroupBox("Join another machine")
        join = QVBoxLayout(join_box)
        join.addWidget(QLabel("Machines nearby that are inviting (pick one, then type the code it shows):"))
        join.addWidget(self.nearby_list)
        join.addWidget(QLabel("Code shown on the other machine:"))
        join_row = QHBoxLayout()
        join_row.addWidget(self.code_field, 1)
        join_row.addWidget(self.join_button)
        join.addLayout(join_row)
        join.addWidget(self.join_status)

        totp_row = QHBoxLayout()
        totp_row.addWidget(self.totp_label)
        totp_row.addWidget(self.totp_field, 1)
        layout = QVBoxLayout(self)
        # The dialog opens before the code arrives; let it grow to show the whole code once it does.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        layout.addLayout(totp_row)
        layout.addWidget(invite_box)
        layout.addWidget(join_box)
        if not self._embedded:
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            buttons.rejected.connect(self.reject)
            layout.addWidget(buttons)

    # ------------------------------------------------------------------ TOTP step-up

    async def _stepped_up(self, action: str, status: QLabel) -> bool:
        """Whether pairing may go ahead: TOTP is off, a step-up holds, or the code typed is good (which starts one).
        Otherwise the code field shows, ``status`` says why, and ``action`` runs again once a code is typed.

        Only when embedded (the first-run window asks in its own page); the tray's dialog asks through ``step_up``'s
        code dialog, as every other tray action does."""
        if not self._embedded:
            return True
        code = self.totp_field.text().strip() or None
        self.totp_field.clear()
        try:
            await asyncio.to_thread(self._node.totp.require, code, "pairing a device")
        except StepUpNeeded:
            self._ask_code(action, status, TOTP_ASK)
            return False
        except NoizyLabError as exc:
            self._ask_code(action, status, one_line(exc.message), ERROR_STYLE)
            return False
        self._waiting_for_code = ""
        self.totp_label.hide()
        self.totp_field.hide()
        return True

    def _ask_code(self, action: str, status: QLabel, text: str, style: str = "") -> None:
        self._waiting_for_code = action
        self.totp_label.show()
        self.totp_field.show()
        self.totp_field.setFocus()
        self._set_status(status, text, style)
        self.totp_asked.emit(action)

    def _code_given(self) -> None:
        """A TOTP code was typed: run again what asked for it."""
        action, self._waiting_for_code = self._waiting_for_code, ""
        if action == "invite":
            self.new_invite()
        elif action == "join":
            self.join()

    # ------------------------------------------------------------------ inviting

    @async_slot()
    async def new_invite(self) -> None:
        """Show a fresh code, then wait for the other machine to join with it."""
        self._cancel_invite()
        self._invite_task = asyncio.current_task()
        self.code_label.setText("…")
        self.qr_label.clear()
        self.expiry_label.setText("")
        if not await self._stepped_up("invite", self.invite_status):
            return
        self._set_status(self.invite_status, "Making a code…")
        refusal = await step_up(self._node.totp, "pairing a device")
        if refusal is not None:
            self._invite_error(refusal)
            return
        try:
            code, expires_at = await self._node.create_invite([])
        except NoizyLabError as exc:
            self._invite_error(exc.message)
            return
        self.code_label.setText(code)
        self.qr_label.setPixmap(qr_pixmap(code))
        minutes = max(1, round((expires_at - time.time()) / 60))
        self.expiry_label.setText(f"Valid for {plural(minutes, 'minute')}, for one machine.")
        self._set_status(self.invite_status, "Waiting for the other machine to join…")
        self.code_shown.emit(code)
        try:
            paired = await self._node.pairing.wait(code, max(1.0, expires_at - time.time()))
        except NoizyLabError as exc:
            self._invite_error(exc.message)
            return
        self.paired = paired
        self._set_status(self.invite_status, paired_text(paired), SUCCESS_STYLE)
        self.invite_paired.emit(paired.peer_name, paired.verification)

    def _invite_error(self, message: str) -> None:
        self._set_status(self.invite_status, one_line(message), ERROR_STYLE)
        self.invite_failed.emit(one_line(message))

    def _cancel_invite(self) -> None:
        # The code itself stays valid on the node until it expires; only this dialog stops waiting for it.
        task, self._invite_task = self._invite_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _copy_code(self) -> None:
        QGuiApplication.clipboard().setText(self.code_label.text())

    # ------------------------------------------------------------------ joining

    @async_slot()
    async def join(self) -> None:
        """Pair with the machine whose code was typed in."""
        code = self.code_field.text().strip()
        if not code:
            self._join_error("type the code shown on the other machine first")
            return
        if not await self._stepped_up("join", self.join_status):
            return
        self.join_button.setEnabled(False)
        self.code_field.setEnabled(False)
        self._set_status(self.join_status, "Joining…")
        try:
            refusal = await step_up(self._node.totp, "pairing a device")
            if refusal is not None:
                self._join_error(refusal)
                return
            picked = self._picked()
            if picked >= 0:
                # The code must come from the machine picked; its announced hosts are tried first.
                code = code_for(self._nearby, picked + 1, code)
            paired = await self._node.join(code)
        except NoizyLabError as exc:
            self._join_error(exc.message)
        except Exception as exc:  # the dialog must answer in one line, whatever failed underneath
            logger.exception("joining with an invite code failed")
            self._join_error(f"joining failed ({type(exc).__name__}): see `noizylab logs`")
        else:
            self.paired = paired
            self._set_status(self.join_status, paired_text(paired), SUCCESS_STYLE)
            self.code_field.clear()
            self.joined.emit(paired.peer_name, paired.verification)
        finally:
            self.join_button.setEnabled(True)
            self.code_field.setEnabled(True)

    def _join_error(self, message: str) -> None:
        self._set_status(self.join_status, one_line(message), ERROR_STYLE)
        self.join_failed.emit(one_line(message))

    def _picked(self) -> int:
        """The row of the nearby machine picked, or -1."""
        rows = [i.row() for i in self.nearby_list.selectedIndexes()]
        return rows[0] if rows and rows[0] < len(self._nearby) else -1

    def refresh_nearby(self) -> None:
        """Show the machines nearby that are inviting now, keeping the one picked if it still is."""
        inviting = sorted(self._node.inviting_nearby(), key=lambda a: a.hosts)
        if inviting == self._nearby and self.nearby_list.count():
            return
        picked = self._nearby[self._picked()].tag if self._picked() >= 0 else ""
        self._nearby = inviting
        self.nearby_list.clear()
        for announcement in inviting:
            item = QListWidgetItem(f"{', '.join(announcement.hosts)}   (tag {announcement.tag})")
            item.setData(Qt.ItemDataRole.UserRole, announcement.tag)
            self.nearby_list.addItem(item)
            if announcement.tag == picked:
                self.nearby_list.setCurrentItem(item)
        if not inviting:
            empty = QListWidgetItem(NO_ONE_NEARBY)
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.nearby_list.addItem(empty)
        self.nearby_changed.emit(len(inviting))

    # ------------------------------------------------------------------ lifecycle

    def open_fresh(self) -> None:
        """Show the dialog with a new code (or raise it if it is already open)."""
        if not self.isVisible():
            self.begin()
        self.show()
        self.raise_()
        self.activateWindow()

    def begin(self) -> None:
        """Make a fresh code and start listing who is nearby (``open_fresh`` does this as it shows)."""
        if self.join_button.isEnabled():
            self._set_status(self.join_status, "")
        self.new_invite()
        self.refresh_nearby()
        self._nearby_timer.start()

    def end(self) -> None:
        """Stop waiting for the invite and listing who is nearby."""
        self._cancel_invite()
        self._nearby_timer.stop()

    def done(self, result: int) -> None:
        """Stop waiting for the invite (and listing who is nearby) when the dialog closes."""
        self.end()
        super().done(result)

    @staticmethod
    def _set_status(label: QLabel, text: str, style: str = "") -> None:
        label.setStyleSheet(style)
        label.setText(text)
