"""``Settings…``: one tab per table of config.toml (``settings_model.PAGES``), its form generated from the schema;
Save checks everything with the parsers the node and the command line use and shows their one line when one fails.

A bool is a check box, a setting with choices a drop-down, anything else a line of text whose tooltip says what it
accepts (the parser's own words). Nothing is written until every page passes; the name applies at once through the
node's rename (as ``noizylab rename`` does), and the window says that the rest applies after a restart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.ui import settings_model as model
from noizylab_desktop.ui.icons import app_icon

if TYPE_CHECKING:
    from noizylab_desktop.core.settings_schema import Described
    from noizylab_desktop.node.node import Node

logger = logging.getLogger(__name__)

Editor = QCheckBox | QComboBox | QLineEdit


def label_for(key: str) -> str:
    """``poll_s`` as a person reads it: "Poll s" would not do, so units are said by the tooltip, not the label."""
    words = ["API" if w == "api" else w for w in key.removeprefix("advisor_").split("_")]
    if words[-1] in ("s", "ms", "kbps", "bytes", "gb", "days", "celsius") and len(words) > 1:
        unit = {"s": "seconds", "ms": "ms", "kbps": "kbps", "bytes": "bytes", "gb": "GiB", "days": "days",
                "celsius": "°C"}[words.pop()]  # fmt: skip
        return f"{_first_up(words)} ({unit})"
    return _first_up(words)


def _first_up(words: list[str]) -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:]


class SettingsWindow(QDialog):
    """The settings of this node's config.toml; ``saved`` carries the line shown after a save."""

    saved = Signal(str)

    def __init__(self, node: Node, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node = node
        self.setWindowTitle("Settings — NOIZYLAB")
        self.setWindowIcon(app_icon(False))
        self.setMinimumWidth(620)
        self.tabs = QTabWidget()
        self.editors: dict[tuple[str, str], tuple[Described, Editor]] = {}
        for page in model.PAGES:
            form_page = QWidget()
            form = QFormLayout(form_page)
            for d in page.fields():
                editor = self._editor(d)
                editor.setToolTip(f"{page.table + '.' if page.table else ''}{d.key}: {d.expect}")
                form.addRow(label_for(d.key), self._with_chooser(editor) if d.kind == "path" else editor)
                self.editors[(page.table, d.key)] = (d, editor)
            self.tabs.addTab(form_page, page.title)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setMinimumHeight(self.fontMetrics().lineSpacing() * 3)  # a long line wraps, and stays readable
        where = QLabel(f"Saved in {node.paths.config_file}")
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        layout = QVBoxLayout(self)
        layout.addWidget(where)
        layout.addWidget(self.tabs)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def _with_chooser(self, editor: Editor) -> QWidget:
        """A path's line of text with a ``Choose…`` button that fills it from the folder picker."""
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(editor)
        choose = QPushButton("Choose…")
        line.addWidget(choose)
        if isinstance(editor, QLineEdit):
            choose.clicked.connect(lambda _=False: self._choose_folder(editor))
        return row

    def _choose_folder(self, editor: QLineEdit) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", editor.text())
        if chosen:
            editor.setText(chosen)

    @staticmethod
    def _editor(d: Described) -> Editor:
        if d.kind == "bool":
            return QCheckBox()
        if d.choices:
            box = QComboBox()
            box.addItems(list(d.choices))
            return box
        return QLineEdit()

    def load(self) -> None:
        """Fill the form from config.toml as it is now."""
        try:
            values = model.current(model.read_file(self._node.paths))
        except NoizyLabError as exc:
            self.message.setText(exc.message)
            return
        for (table, key), (_, editor) in self.editors.items():
            self.set_value(editor, values[table][key])
        self.message.setText("")

    @staticmethod
    def set_value(editor: Editor, value: Any) -> None:
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            editor.setCurrentText(str(value))
        else:
            editor.setText(model.as_text(value))

    def edited(self) -> model.Values:
        """What the form holds, as config.toml's values."""
        values: model.Values = {}
        for (table, key), (d, editor) in self.editors.items():
            if isinstance(editor, QCheckBox):
                value: Any = editor.isChecked()
            elif isinstance(editor, QComboBox):
                value = editor.currentText()
            else:
                value = model.from_text(d.kind, editor.text())
            values.setdefault(table, {})[key] = value
        return values

    def editor(self, table: str, key: str) -> Editor:
        """The widget that edits ``table.key``."""
        return self.editors[(table, key)][1]

    def save(self) -> None:
        """Check and write; the name is applied by the node at once. Shows one line either way."""
        try:
            done = model.save(self._node.paths, self.edited())
            if done.name is not None:
                self._node.rename(done.name)
        except NoizyLabError as exc:
            line = exc.message
        except OSError as exc:  # the config folder cannot be written: say so in one line
            logger.exception("saving the settings failed")
            line = f"could not save {self._node.paths.config_file}: {exc.strerror or exc}"
        else:
            line = done.summary()
        self.message.setText(line)
        self.saved.emit(line)

    def open_fresh(self) -> None:
        """Show the window with what config.toml holds now (or raise it if it is already open)."""
        if not self.isVisible():
            self.load()
        self.show()
        self.raise_()
        self.activateWindow()
