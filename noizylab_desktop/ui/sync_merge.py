"""The tray's conflict dialog: how the two versions of a file differ, the AI advisor's proposed merge as coloured
diffs, and Apply / Keep mine / Keep theirs. It only calls the sync feature's resolver, the same operations the
``Sync`` RPCs and ``noizylab sync merge`` use; nothing is written until one of those buttons is pressed.
"""

from __future__ import annotations

import html
import logging

from PySide6.QtCore import Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QTextEdit, QVBoxLayout, QWidget

from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.services.sync.resolve import Conflict, Keep, Resolver
from noizylab_desktop.ui.qt_async import async_slot

logger = logging.getLogger(__name__)

ADDED = "#1a7f37"
REMOVED = "#cf222e"
HUNK = "#6e7781"


def diff_html(diff: str) -> str:
    """A unified diff as HTML: added lines green, removed lines red, hunk headers grey, all monospace."""
    rows = []
    for line in diff.splitlines():
        colour = ""
        if line.startswith("+") and not line.startswith("+++"):
            colour = ADDED
        elif line.startswith("-") and not line.startswith("---"):
            colour = REMOVED
        elif line.startswith(("@@", "---", "+++")):
            colour = HUNK
        text = html.escape(line)
        rows.append(f'<span style="color:{colour}">{text}</span>' if colour else text)
    return "<pre>" + "\n".join(rows) + "</pre>"


class MergeDialog(QDialog):
    """One unresolved conflict: shows the diffs and resolves it when the user says how."""

    resolved = Signal(str)

    def __init__(self, resolver: Resolver, conflict: Conflict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.resolver = resolver
        self.conflict = conflict
        self.has_proposal = False
        r = conflict.record
        self.setWindowTitle(f"Conflict in {r.path}")
        self.resize(760, 520)
        layout = QVBoxLayout(self)
        self.summary = QLabel(
            f"{r.path} ({conflict.local}): the file holds {r.file_from}'s version, the conflict copy "
            f"{r.copy.rsplit('/', 1)[-1]} holds {r.copy_from}'s."
        )
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.diff_view = QTextEdit(readOnly=True)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.diff_view.setFont(mono)
        layout.addWidget(self.diff_view, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.ask_button = QPushButton("Ask AI for a merge")
        self.apply_button = QPushButton("Apply")
        self.mine_button = QPushButton("Keep mine")
        self.theirs_button = QPushButton("Keep theirs")
        self.close_button = QPushButton("Close")
        for button in (self.ask_button, self.apply_button, self.mine_button, self.theirs_button, self.close_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.ask_button.setVisible(False)  # until the advisor is known to be on
        self.apply_button.setEnabled(False)  # until there is a proposal to apply
        self.ask_button.clicked.connect(self.ask_ai)
        self.apply_button.clicked.connect(lambda: self.resolve("proposal"))
        self.mine_button.clicked.connect(lambda: self.resolve("mine"))
        self.theirs_button.clicked.connect(lambda: self.resolve("theirs"))
        self.close_button.clicked.connect(self.reject)

    async def load(self) -> None:
        """Show how the two versions differ, and offer the advisor when it is on."""
        try:
            shown = await self.resolver.propose(self.conflict.record.id, ai=False)
        except NoizyLabError as exc:
            self.status.setText(exc.message)
            return
        self.diff_view.setHtml(diff_html(shown.diff_versions or "(the versions differ only in line endings)"))
        self.ask_button.setVisible(shown.advisor_on)

    @async_slot()
    async def ask_ai(self) -> None:
        """Ask the advisor for a merge and show it against the file and against the conflict copy."""
        self._busy(True, "asking the AI advisor for a merge…")
        try:
            proposal = await self.resolver.propose(self.conflict.record.id, ai=True)
        except NoizyLabError as exc:
            self._busy(False, exc.message)
            return
        r = self.conflict.record
        self.diff_view.setHtml(
            diff_html(f"# the proposed merge against {r.path} now\n{proposal.diff_file or '(no change)'}")
            + diff_html(f"# the proposed merge against the conflict copy\n{proposal.diff_copy or '(no change)'}")
        )
        self.has_proposal = True
        self._busy(False, "the proposed merge is shown; nothing is changed until you press Apply")

    @async_slot(str)
    async def resolve(self, keep: Keep) -> None:
        """Apply the proposal or keep one version; close on success, say why not otherwise."""
        self._busy(True, "resolving…")
        try:
            await self.resolver.resolve(self.conflict.record.id, keep)
        except NoizyLabError as exc:
            self._busy(False, exc.message)
            return
        self.status.setText("resolved")
        self.resolved.emit(self.conflict.record.id)
        self.accept()

    def _busy(self, busy: bool, message: str) -> None:
        self.status.setText(message)
        for button in (self.ask_button, self.mine_button, self.theirs_button):
            button.setEnabled(not busy)
        self.apply_button.setEnabled(not busy and self.has_proposal)
