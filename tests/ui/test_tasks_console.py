"""The task console under Xvfb: `Run on PEER…` from the tray, live output from a real peer, and cancel."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.tasks_console import TaskConsole, TasksTray
from tests.conftest import NodeProcess
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import open_menu
from tests.ui.waiting import Run, eventually, expect, within


def _shown_title(console: TaskConsole) -> str:
    """The title the X server holds for the window (what a window manager draws), or "" before it is set."""
    shown = subprocess.run(
        ["xprop", "-id", str(int(console.winId())), "_NET_WM_NAME"], capture_output=True, text=True, check=False
    ).stdout
    return shown.split(" = ", 1)[1].strip().strip('"') if " = " in shown else ""


def _cell(console: TaskConsole, task_id: str, column: int) -> str:
    row = console._row_of(task_id)
    item = console.table.item(row, column) if row >= 0 else None
    return item.text() if item is not None else ""


def test_run_on_a_peer_from_its_submenu_shows_live_output_and_cancel_ends_it(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    worker = make_node("worker").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(worker.join, code)
            await within(online, 20, "the desk to see the worker online")
            await asyncio.to_thread(worker.cli, "allow", "desk", "tasks")

            rows = [r.text for r in await open_menu(app.tray)]
            assert "Task console…" in rows
            app.tray.menu.aboutToShow.emit()
            peer_row = next(a for a in app.tray.menu.actions() if a.text().startswith("worker"))
            assert peer_row.menu() is not None
            run_on = next(a for a in peer_row.menu().actions() if a.text() == "Run on worker…")
            run_on.trigger()

            extension = next(e for e in app.tray.extensions if isinstance(e, TasksTray))
            console = extension.console
            assert console is not None and console.isVisible()
            assert console.target.currentText() == "worker"
            # What the window manager shows: Qt adds the application's name once, so the title names it once.
            await eventually(lambda: _shown_title(console) == "Tasks — NOIZYLAB", 5, "the window's title on X")

            QTest.keyClicks(console.command, "echo hello from $0; exec sleep 300")
            QTest.mouseClick(console.run_button, Qt.MouseButton.LeftButton)
            task_id = await eventually(console.selected, 10, "the new task to be shown and chosen")
            await eventually(lambda: "hello from" in console.view.toPlainText(), 15, "the worker's output")
            assert _cell(console, task_id, 1) == "running" and _cell(console, task_id, 3) == "worker"
            assert console.status.text() == f"Task {task_id[:10]} ran on worker: you chose it"
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", _cell(console, task_id, 4)), "started at"
            assert _cell(console, task_id, 5) == "desk", "asked by"
            assert [console.table.horizontalHeaderItem(c).text() for c in range(7)] == [
                "Task", "State", "Exit", "Ran on", "Started", "Asked by", "Command"
            ]  # fmt: skip
            assert console.cancel_button.isEnabled()

            QTest.mouseClick(console.cancel_button, Qt.MouseButton.LeftButton)
            await eventually(lambda: _cell(console, task_id, 1) == "cancelled", 10, "the task to end as cancelled")
            assert not console.cancel_button.isEnabled()
            record = app.node.features["tasks"].store.find(task_id)  # type: ignore[attr-defined]
            assert (record.runner, record.state) == ("worker", "cancelled")

            # On this machine, under qasync: the child and its reader threads work on Qt's loop too.
            console.target.setCurrentIndex(console.target.findData("self"))
            console.command.setText("echo local $((6 * 7))")
            QTest.mouseClick(console.run_button, Qt.MouseButton.LeftButton)
            local_id = await eventually(lambda: console.selected() != task_id and console.selected(), 10, "the task")
            await eventually(lambda: _cell(console, local_id, 1) == "exited", 10, "the local task to end")
            assert console.view.toPlainText() == "local 42\n" and _cell(console, local_id, 2) == "0"
            assert _cell(console, local_id, 3) == "desk"
            keep(console, "task-console")

            # The scheduler's choice, said as a person would, not as its load score.
            console.target.setCurrentIndex(0)
            console.command.setText("echo picked")
            QTest.mouseClick(console.run_button, Qt.MouseButton.LeftButton)
            await eventually(lambda: "least busy" in console.status.text(), 10, "where the scheduler ran it")
            assert re.fullmatch(r"Task \w+ ran on (desk|worker): least busy of 2 machines", console.status.text())

            # A bad command line gets one line in the window, and nothing is started.
            console.command.setText("")
            QTest.mouseClick(console.run_button, Qt.MouseButton.LeftButton)
            await eventually(lambda: console.status.text() == "Type a command to run first.", 5, "the hint")

    run(scenario())
