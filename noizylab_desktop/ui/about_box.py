"""``About NOIZYLAB``: the version, this node's ID (selectable, to read out or paste) and a button opening the logs
folder in the platform's file manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout, QWidget

from noizylab_desktop import __version__
from noizylab_desktop.ui.icons import app_icon

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node


def open_folder(folder: Path) -> None:
    """Show ``folder`` in the file manager."""
    folder.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


class AboutBox(QDialog):
    """What this copy of NOIZYLAB is and which node it runs."""

    def __init__(self, node: Node, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About NOIZYLAB")
        self.setWindowIcon(app_icon(False))
        self._node = node
        self.logs = node.paths.log_dir
        # Opens the logs folder; a test answers instead (no file manager under Xvfb).
        self.open_folder: Callable[[Path], None] = open_folder
        self.version_label = QLabel(f"NOIZYLAB Desktop {__version__}")
        self.version_label.setStyleSheet("font-weight: bold")
        self.id_label = QLabel("")
        self.id_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.logs_label = QLabel(f"Logs: {self.logs}")
        self.logs_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.logs_button = QPushButton("Open logs folder")
        self.logs_button.clicked.connect(lambda _=False: self.open_folder(self.logs))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.logs_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for label in (self.version_label, self.id_label, self.logs_label):
            layout.addWidget(label)
        layout.addWidget(buttons)

    def lines(self) -> list[str]:
        """What the box says, line by line."""
        return [line for label in (self.version_label, self.id_label, self.logs_label) for line in
                label.text().splitlines()]  # fmt: skip

    def open_fresh(self) -> None:
        """Show the box, with this machine's name as it is now."""
        self.id_label.setText(f"This machine ({self._node.settings.name}) is node\n{self._node.identity.node_id}")
        self.show()
        self.raise_()
        self.activateWindow()
