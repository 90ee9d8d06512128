"""The task console: running and recent tasks, the chosen task's live output, cancel, and a bar to run a command.
Below the tasks, the processes the node supervises for its features (a Dask scheduler or worker): name, role, pid,
state and uptime, read from the node's supervisor once a second while the window shows.

It follows the node's task events through the bridge (``TaskStarted``/``TaskOutput``/``TaskFinished``) and starts
tasks through the tasks feature on the same loop. The tray adds ``Task console…`` and, per peer, ``Run on PEER…``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.words import duration, plural, when
from noizylab_desktop.services.routing.model import Decision
from noizylab_desktop.services.tasks.events import TaskFinished, TaskOutput, TaskStarted
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart
from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.qt_async import async_slot

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.tasks.feature import TasksFeature

logger = logging.getLogger(__name__)

AUTO = "Best fit (scheduler)"
COLUMNS = ("Task", "State", "Exit", "Ran on", "Started", "Asked by", "Command")
KEEP_CHARS = 200_000  # output kept per task in the window; history keeps its own tail
RECENT = 50
CHILD_COLUMNS = ("Process", "Role", "PID", "State", "Uptime", "Restarts")
CHILDREN_EVERY_MS = 1000


def why_there(decision: Decision) -> str:
    """Why a task runs where it does, as a person says it ("least busy of 2 machines"), not the scheduler's score."""
    if decision.decided_by == "user":
        return "you chose it"
    if decision.decided_by == "advisor":
        return "the AI advisor chose it"
    n = len(decision.eligible)
    why = f"least busy of {plural(n, 'machine')}" if n > 1 else "the only machine that can run it"
    if decision.advisor_problem:
        return f"{why} (the AI advisor's answer was not used: {decision.advisor_problem})"
    return why


class TaskConsole(QWidget):
    """One window for every task this node asked for or ran."""

    def __init__(self, feature: TasksFeature, ctx: NodeContext, bridge: Bridge) -> None:
        super().__init__()
        self.feature = feature
        self.ctx = ctx
        # Qt adds the application's display name ("… — NOIZYLAB") to every window title itself.
        self.setWindowTitle("Tasks")
        self.setWindowIcon(app_icon(False))
        self.resize(900, 560)
        self.output: dict[str, str] = {}
        self.states: dict[str, str] = {}

        self.target = QComboBox()
        self.command = QLineEdit()
        self.command.setPlaceholderText("a command line, e.g. nvidia-smi or python train.py")
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Run on"))
        bar.addWidget(self.target)
        bar.addWidget(self.command, 1)
        bar.addWidget(self.run_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.cancel_button = QPushButton("Cancel task")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.children_label = QLabel("Supervised by this node")
        self.child_table = QTableWidget(0, len(CHILD_COLUMNS))
        self.child_table.setHorizontalHeaderLabels(CHILD_COLUMNS)
        self.child_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.child_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.child_table.horizontalHeader().setStretchLastSection(True)
        self.child_table.verticalHeader().setVisible(False)
        supervised = QWidget()
        below = QVBoxLayout(supervised)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.children_label)
        below.addWidget(self.child_table)
        self.supervised = supervised

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(supervised)
        splitter.addWidget(self.view)
        footer = QHBoxLayout()
        footer.addWidget(self.status, 1)
        footer.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        layout.addLayout(footer)

        self.run_button.clicked.connect(self.run_command)
        self.command.returnPressed.connect(self.run_command)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.table.itemSelectionChanged.connect(self._show_selected)
        bridge.any_event.connect(self._on_event)
        self.refresh_targets()
        self._load_history()
        self.refresh_children()
        self._children_timer = QTimer(self)
        self._children_timer.setInterval(CHILDREN_EVERY_MS)
        self._children_timer.timeout.connect(self._tick)
        self._children_timer.start()

    # ------------------------------------------------------------------ filling in

    def refresh_targets(self, chosen: str = "") -> None:
        """The choices of where to run: the scheduler, this machine, each online peer."""
        self.target.clear()
        self.target.addItem(AUTO, "")
        self.target.addItem(f"{self.ctx.settings.name} (this machine)", "self")
        for state in self.ctx.registry.peers():
            if state.online:
                self.target.addItem(state.peer.name, state.peer.node_id)
        if chosen:
            self.target.setCurrentIndex(max(0, self.target.findData(chosen)))

    def _tick(self) -> None:
        if self.isVisible():  # a hidden window catches up in ``show_for``
            self.refresh_children()

    def refresh_children(self) -> None:
        """The supervised processes as they are now (from memory: no call); the section hides when there are none."""
        found = self.ctx.supervisor.children()
        self.child_table.setRowCount(len(found))
        for row, child in enumerate(found):
            pid, up = (str(child.pid), duration(child.uptime_s)) if child.pid else ("-", "-")
            role = f"{child.role} at {child.detail}" if child.detail else child.role
            for column, text in enumerate((child.name, role, pid, child.state, up, str(child.restarts))):
                self.child_table.setItem(row, column, QTableWidgetItem(text))
        self.supervised.setVisible(bool(found))

    def _load_history(self) -> None:
        for record in reversed(self.feature.store.recent(RECENT)):
            r = record
            self._add_row(r.id, r.state, r.exit_code, r.runner, r.started_at or r.created_at, r.asker, r.command)
            self.output[record.id] = record.tail.decode("utf-8", "replace")

    def _set_cell(self, row: int, column: int, text: str) -> None:
        item = self.table.item(row, column)
        if item is not None:
            item.setText(text)

    def _row_of(self, task_id: str) -> int:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == task_id:
                return row
        return -1

    def _add_row(
        self, task_id: str, state: str, exit_code: int, where: str, started: float, asker: str, command: str
    ) -> None:
        self.table.insertRow(0)
        first = QTableWidgetItem(task_id[:10])
        first.setData(Qt.ItemDataRole.UserRole, task_id)
        self.table.setItem(0, 0, first)
        exited = "" if state == "running" else str(exit_code)
        for column, text in enumerate((state, exited, where, when(started, seconds=True), asker, command), 1):
            self.table.setItem(0, column, QTableWidgetItem(text))
        self.states[task_id] = state
        while self.table.rowCount() > RECENT * 2:
            self.table.removeRow(self.table.rowCount() - 1)

    def _on_event(self, event: object) -> None:
        if isinstance(event, TaskStarted):
            if self._row_of(event.task_id) < 0:
                self._add_row(event.task_id, "running", 0, event.where, event.at, event.asker, event.command)
                self.output.setdefault(event.task_id, "")
            else:  # re-routed: the same task on another node
                self._set_cell(self._row_of(event.task_id), 3, event.where)
        elif isinstance(event, TaskOutput):
            text = self.output.get(event.task_id, "") + event.text
            self.output[event.task_id] = text[-KEEP_CHARS:]
            if self.selected() == event.task_id:
                self.view.moveCursor(self.view.textCursor().MoveOperation.End)
                self.view.insertPlainText(event.text)
        elif isinstance(event, TaskFinished):
            row = self._row_of(event.task_id)
            self.states[event.task_id] = event.state
            if row >= 0:
                self._set_cell(row, 1, event.state)
                self._set_cell(row, 2, str(event.exit_code))
            if event.error and event.state != "cancelled":
                self.status.setText(f"Task {event.task_id[:10]}: {event.error}")
            self._show_selected()

    # ------------------------------------------------------------------ actions

    def selected(self) -> str:
        """The ID of the chosen task, or ""."""
        rows = self.table.selectionModel().selectedRows()
        item = self.table.item(rows[0].row(), 0) if rows else None
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""

    def select(self, task_id: str) -> None:
        row = self._row_of(task_id)
        if row >= 0:
            self.table.selectRow(row)

    def _show_selected(self) -> None:
        task_id = self.selected()
        self.view.setPlainText(self.output.get(task_id, ""))
        self.view.moveCursor(self.view.textCursor().MoveOperation.End)
        self.cancel_button.setEnabled(self.states.get(task_id) == "running")

    @async_slot()
    async def run_command(self) -> None:
        """Start the command line where the bar says, and show its output as it comes."""
        line = self.command.text().strip()
        if not line:
            self.status.setText("Type a command to run first.")
            return
        request = tpb.SubmitRequest(spec=tpb.TaskSpec(shell=line), on=str(self.target.currentData() or ""))
        self.run_button.setEnabled(False)
        try:
            accepted = await self.feature.asker.accept(request)
        except NoizyLabError as exc:
            self.status.setText(exc.message[:1].upper() + exc.message[1:])
            return
        finally:
            self.run_button.setEnabled(True)
        self.feature.asker.submit_in_background(request, accepted)
        spec, _, _, decision = accepted
        self.status.setText(f"Task {spec.id[:10]} ran on {decision.name}: {why_there(decision)}")
        self.select(spec.id)

    @async_slot()
    async def cancel_selected(self) -> None:
        """Cancel the chosen task wherever it runs."""
        task_id = self.selected()
        if not task_id:
            return
        self.cancel_button.setEnabled(False)
        try:
            if task_id in self.feature.asker.asked:
                where = await self.feature.asker.cancel(task_id)
            elif self.feature.runner.cancel(task_id):
                where = self.ctx.settings.name
            else:
                self.status.setText(f"Task {task_id[:10]} is not running any more.")
                return
        except NoizyLabError as exc:
            self.status.setText(exc.message)
            return
        self.status.setText(f"Cancelling task {task_id[:10]} on {where}…")

    def show_for(self, peer_id: str = "") -> None:
        """Bring the window up, with ``peer_id`` (if given) chosen in the Run bar."""
        self.refresh_targets(peer_id)
        self.refresh_children()
        self.show()
        self.raise_()
        self.activateWindow()
        self.command.setFocus()


class TasksTray(TrayPart):
    """``Task console…`` in the menu and ``Run on PEER…`` in each online peer's submenu."""

    def __init__(self, feature: TasksFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.ctx = ctx
        self.bridge = bridge
        self.console: TaskConsole | None = None

    def open_console(self, peer_id: str = "") -> TaskConsole:
        if self.console is None:
            self.console = TaskConsole(self.feature, self.ctx, self.bridge)
        self.console.show_for(peer_id)
        return self.console

    def add_actions(self, menu: QMenu) -> None:
        running = len(self.feature.asker.asked)
        label = f"Task console… ({running} running)" if running else "Task console…"
        menu.addAction(label).triggered.connect(lambda: self.open_console())

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        action = menu.addAction(f"Run on {peer.peer.name}…")
        action.setEnabled(peer.online)
        action.triggered.connect(lambda _=False, peer_id=peer.peer.node_id: self.open_console(peer_id))

    def close(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console.deleteLater()
            self.console = None
