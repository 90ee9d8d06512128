"""The first-run window: name this machine, pair it, take the common first steps, start at login.

Three pages, in order. **Name**: this machine's name as its peers will see it, applied as ``noizylab rename``
applies it. **Pair**: the ``Pair a device…`` dialog embedded (a fresh invite code with its QR code, or a code typed
from the other machine; TOTP asked for where it is on), ending with the verification string both machines show;
``Skip`` goes on without a peer. **First steps**: for the peer just paired, let it run tasks here, share a folder
with it, share the clipboard; and the start-at-login switch, ticked. ``Finish`` applies them
(``node/first_run.apply_steps``), says how each went, and marks the first run done, so the window never opens
by itself again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from noizylab_desktop.core.errors import NoizyLabError, StepUpNeeded
from noizylab_desktop.node.first_run import FirstSteps, StepOutcome, apply_steps, mark_done, set_autostart
from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.pairing_dialog import ERROR_STYLE, SUCCESS_STYLE, TOTP_ASK, PairingDialog, one_line
from noizylab_desktop.ui.qt_async import async_slot

if TYPE_CHECKING:
    from noizylab_desktop.node.autostart import Autostart
    from noizylab_desktop.node.node import Node

logger = logging.getLogger(__name__)

NAME_PAGE, PAIR_PAGE, STEPS_PAGE = 0, 1, 2


class FirstRunWindow(QDialog):
    """The first run of one node; ``autostart`` is where its start at login is set."""

    page_shown = Signal(int)  # NAME_PAGE, PAIR_PAGE or STEPS_PAGE
    paired = Signal(str, str)  # peer name, verification
    finished_steps = Signal(list)  # [StepOutcome]: the steps applied, the first run done
    failed = Signal(str)  # one-line message on the page shown

    def __init__(self, node: Node, autostart: Autostart, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node = node
        self._autostart = autostart
        self.peer_id = ""
        self._finished = False
        self.setWindowTitle("Welcome to NOIZYLAB")
        self.setWindowIcon(app_icon(False))
        self.setMinimumWidth(560)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._name_page())
        self.pages.addWidget(self._pair_page())
        self.pages.addWidget(self._steps_page())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.back_button = QPushButton("Back")
        self.back_button.clicked.connect(lambda: self.show_page(self.pages.currentIndex() - 1))
        self.next_button = QPushButton("Next")
        self.next_button.setDefault(True)
        self.next_button.clicked.connect(self.next)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        # The invite code arrives after the window shows: let the window grow to show all of it.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        layout.addWidget(self.pages, 1)
        layout.addLayout(buttons)
        self.show_page(NAME_PAGE)

    # ------------------------------------------------------------------ pages

    def _name_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        title = QLabel("<h2>Welcome to NOIZYLAB</h2>This app joins your computers into one private grid. "
                       "First, the name this machine goes by on your other machines:")  # fmt: skip
        title.setWordWrap(True)
        self.name_field = QLineEdit(self._node.settings.name)
        self.name_field.returnPressed.connect(self.next)
        layout.addWidget(title)
        layout.addWidget(self.name_field)
        layout.addStretch(1)
        return page

    def _pair_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        intro = QLabel("Now pair it with another of your machines: show this code there (or scan it), or type the "
                       "code that machine shows. Both then show the same verification number: check it.")  # fmt: skip
        intro.setWordWrap(True)
        self.pairing = PairingDialog(self._node, page, embedded=True)
        self.pairing.setWindowFlags(Qt.WindowType.Widget)
        self.pairing.invite_paired.connect(self._on_paired)
        self.pairing.joined.connect(self._on_paired)
        # The code arrives once the page shows: grow the window to show all of it (once Qt has laid it out).
        self.pairing.code_shown.connect(lambda _code: QTimer.singleShot(0, self._fit))
        self.verification = QLabel("")
        self.verification.setWordWrap(True)
        self.verification.setStyleSheet(SUCCESS_STYLE + " font-size: 14pt;")
        layout.addWidget(intro)
        layout.addWidget(self.pairing)
        layout.addWidget(self.verification)
        return page

    def _steps_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.steps_title = QLabel("")
        self.steps_title.setWordWrap(True)
        self.tasks_box = QCheckBox()
        self.clipboard_box = QCheckBox()
        self.clipboard_box.setChecked(True)
        self.share_box = QCheckBox()
        self.folder_field = QLineEdit()
        self.folder_field.setPlaceholderText("the folder to keep in sync")
        self.folder_field.textEdited.connect(lambda text: self.share_box.setChecked(bool(text)))
        self.choose_button = choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addSpacing(24)
        folder_row.addWidget(self.folder_field, 1)
        folder_row.addWidget(choose)
        self.autostart_box = QCheckBox("Start NOIZYLAB when I log in")
        self.autostart_box.setChecked(True)
        self.totp_label = QLabel("Code from your authenticator app:")
        self.totp_field = QLineEdit()
        self.totp_field.setMaxLength(16)
        self.totp_field.returnPressed.connect(self.next)
        totp_row = QHBoxLayout()
        totp_row.addWidget(self.totp_label)
        totp_row.addWidget(self.totp_field, 1)
        self.totp_label.hide()
        self.totp_field.hide()
        self.outcomes = QLabel("")
        self.outcomes.setWordWrap(True)
        self.outcomes.setTextFormat(Qt.TextFormat.PlainText)
        for widget in (self.steps_title, self.tasks_box, self.share_box):
            layout.addWidget(widget)
        layout.addLayout(folder_row)
        layout.addWidget(self.clipboard_box)
        layout.addWidget(self.autostart_box)
        layout.addLayout(totp_row)
        layout.addWidget(self.outcomes)
        layout.addStretch(1)
        return page

    def show_page(self, index: int) -> None:
        """Go to page ``index``: the pair page makes a fresh code as it shows, and stops waiting when left."""
        index = max(NAME_PAGE, min(STEPS_PAGE, index))
        if self.pages.currentIndex() == PAIR_PAGE and index != PAIR_PAGE:
            self.pairing.end()
        self.pages.setCurrentIndex(index)
        self._set_status("")
        self.back_button.setEnabled(index != NAME_PAGE and not self._finished)
        if index == PAIR_PAGE:
            self.next_button.setText("Next" if self.peer_id else "Skip")
            if not self.peer_id:
                self.pairing.begin()
        elif index == STEPS_PAGE:
            self._prepare_steps()
            self.next_button.setText("Close" if self._finished else "Finish")
        else:
            self.next_button.setText("Next")
        self.page_shown.emit(index)

    def _fit(self) -> None:
        hint = self.sizeHint()
        self.resize(max(self.width(), hint.width()), max(self.height(), hint.height()))

    def _prepare_steps(self) -> None:
        name = self._peer_name()
        with_peer = bool(name)
        self.steps_title.setText(
            f"<h3>First steps with {name}</h3>"
            if with_peer
            else "<h3>First steps</h3>Pair a machine later with <i>Pair a device…</i> in the tray menu."
        )
        self.tasks_box.setText(f"Let {name or 'the peer'} run tasks on this machine")
        self.share_box.setText(f"Share a folder with {name or 'the peer'}")
        self.clipboard_box.setText(f"Share the clipboard with {name or 'the peer'}")
        for box in (self.tasks_box, self.share_box, self.clipboard_box, self.folder_field, self.choose_button):
            box.setVisible(with_peer)
        if not with_peer:
            self.clipboard_box.setChecked(False)

    def _peer_name(self) -> str:
        paired = self.pairing.paired
        return paired.peer_name if paired is not None and self.peer_id else ""

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder to keep in sync", str(Path.home()))
        if folder:
            self.folder_field.setText(folder)
            self.share_box.setChecked(True)

    # ------------------------------------------------------------------ moving on

    def next(self) -> None:
        """Name: rename and go on. Pair: go on (``Skip`` without a peer). First steps: apply them and finish."""
        page = self.pages.currentIndex()
        if page == NAME_PAGE:
            try:
                self._node.rename(self.name_field.text())
            except NoizyLabError as exc:
                self._fail(exc.message)
                return
            self.name_field.setText(self._node.settings.name)
            self.show_page(PAIR_PAGE)
        elif page == PAIR_PAGE:
            self.show_page(STEPS_PAGE)
        elif self._finished:
            self.accept()
        else:
            self.finish()

    @async_slot()
    async def finish(self) -> None:
        """Apply the first steps (``next`` on the last page), then say how each went."""
        if self.share_box.isChecked() and self.share_box.isVisible() and not self.folder_field.text().strip():
            self._fail("choose the folder to share first, or untick Share a folder")
            return
        steps = FirstSteps(
            allow_tasks=self.tasks_box.isChecked() and bool(self.peer_id),
            share_folder=self.folder_field.text().strip() if self.share_box.isChecked() and self.peer_id else "",
            clipboard=self.clipboard_box.isChecked() and bool(self.peer_id),
            autostart=self.autostart_box.isChecked(),
        )
        code = self.totp_field.text().strip() or None
        self.totp_field.clear()
        self.next_button.setEnabled(False)
        try:
            if self.peer_id:
                outcomes = await apply_steps(self._node, self.peer_id, steps, self._autostart, code)
            else:
                outcomes = [set_autostart(self._autostart, steps.autostart)]
        except StepUpNeeded:
            self._ask_code(TOTP_ASK)
            return
        except NoizyLabError as exc:
            if self.totp_field.isVisible():
                self._ask_code(one_line(exc.message), ERROR_STYLE)
            else:
                self._fail(exc.message)
            return
        finally:
            self.next_button.setEnabled(True)
        mark_done(self._node.paths, "window")
        self._show_outcomes(outcomes)

    def _ask_code(self, text: str, style: str = "") -> None:
        self.totp_label.show()
        self.totp_field.show()
        self.totp_field.setFocus()
        self._set_status(text, style)
        self.failed.emit(one_line(text))

    def _show_outcomes(self, outcomes: list[StepOutcome]) -> None:
        self._finished = True
        self.totp_label.hide()
        self.totp_field.hide()
        done = (self.tasks_box, self.share_box, self.clipboard_box, self.autostart_box, self.folder_field)
        for box in (*done, self.choose_button):
            box.setEnabled(False)
        self.outcomes.setText("\n".join(("✓ " if o.ok else "✗ ") + o.line for o in outcomes))
        all_ok = all(o.ok for o in outcomes)
        self._set_status("All set." if all_ok else "Done; what did not work is marked ✗.", SUCCESS_STYLE)
        self.back_button.setEnabled(False)
        self.next_button.setText("Close")
        self.finished_steps.emit(outcomes)

    def _on_paired(self, name: str, verification: str) -> None:
        paired = self.pairing.paired
        self.peer_id = paired.peer_id if paired is not None else ""
        self.verification.setText(
            f"Paired with {name}. Verification: {verification}. The other machine shows the same number."
        )
        self.next_button.setText("Next")
        self.paired.emit(name, verification)

    def _fail(self, message: str) -> None:
        self._set_status(one_line(message), ERROR_STYLE)
        self.failed.emit(one_line(message))

    def _set_status(self, text: str, style: str = "") -> None:
        self.status.setStyleSheet(style)
        self.status.setText(text)

    def done(self, result: int) -> None:
        """Stop waiting for an invite when the window closes (finished or not: unfinished, it opens next time)."""
        self.pairing.end()
        super().done(result)
