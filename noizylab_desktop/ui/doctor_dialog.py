"""``Check connections…``: why a paired machine is unreachable, one line per finding (``noizylab doctor``'s)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout, QWidget

from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.qt_async import async_slot

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node

logger = logging.getLogger(__name__)


class DoctorDialog(QDialog):
    """Runs the node's diagnosis when opened (and on ``Check again``) and shows its findings."""

    checked = Signal(list)  # the lines shown, once a check ends

    def __init__(self, node: Node, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node = node
        self.setWindowTitle("Check connections — NOIZYLAB")
        self.setWindowIcon(app_icon(False))
        self.setMinimumWidth(560)
        self.findings_label = QLabel("")
        self.findings_label.setWordWrap(True)
        self.findings_label.setTextFormat(Qt.TextFormat.PlainText)
        self.findings_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.again_button = QPushButton("Check again")
        self.again_button.clicked.connect(self.check)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.again_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.findings_label)
        layout.addWidget(buttons)

    def lines(self) -> list[str]:
        """The findings as shown, one per line."""
        return self.findings_label.text().splitlines()

    @async_slot()
    async def check(self) -> None:
        """Look at every paired peer (a few seconds at most) and show what was found."""
        self.again_button.setEnabled(False)
        self.findings_label.setText("Checking…")
        try:
            findings = await self._node.diagnose()
        except Exception as exc:  # the dialog must answer in one line, whatever failed underneath
            logger.exception("checking connections failed")
            lines = [f"checking failed ({type(exc).__name__}): see `noizylab logs`"]
        else:
            lines = [f.line() for f in findings] or ["Nothing to report: no paired devices, and nothing in the way."]
        finally:
            self.again_button.setEnabled(True)
        self.findings_label.setText("\n".join(lines))
        self.checked.emit(lines)

    def open_fresh(self) -> None:
        """Show the dialog and check at once (or raise it if it is already open)."""
        if not self.isVisible():
            self.check()
        self.show()
        self.raise_()
        self.activateWindow()
