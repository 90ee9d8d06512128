"""The tray's Dask rows: what the node knows of its cluster, read on every menu rebuild without asking any node; and
the task console listing the cluster's processes as the node's supervised children."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from noizylab_desktop.node.node import Node
from noizylab_desktop.services.dask.view import DaskView
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.dask_tray import DaskTray, cluster_row, peer_row
from noizylab_desktop.ui.tasks_console import CHILD_COLUMNS, TaskConsole, TasksTray
from tests.ui.conftest import node_settings
from tests.ui.menus import open_menu
from tests.ui.waiting import Run, eventually

BETA = "BBBBBBB-BBBBBBB"
GAMMA = "CCCCCCC-CCCCCCC"


def test_a_node_without_a_cluster_says_so_in_its_menu(run: Run, tmp_path: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            assert any(isinstance(e, DaskTray) for e in app.tray.extensions)

            rows = await open_menu(app.tray)

            dask = [r for r in rows if r.text.startswith("Dask")]
            assert [(r.text, r.enabled) for r in dask] == [("Dask cluster: not running", False)]

    run(scenario())


def test_the_scheduler_node_counts_workers_and_running_tasks_and_names_each_peer_s_part() -> None:
    here = DaskView(cluster_id="c1", scheduler_id="A", scheduler_name="desk", scheduler_here=True,
                    workers=frozenset({"A", BETA}), starting=frozenset({GAMMA}), running_tasks=1)  # fmt: skip

    assert cluster_row(here) == "Dask cluster: 2 workers (1 starting), 1 task running"
    assert peer_row(here, BETA) == "Runs a Dask worker"
    assert peer_row(here, GAMMA) == "Dask worker starting"
    assert peer_row(here, "DDDDDDD") == "Runs no Dask worker"


def test_a_member_of_a_peer_s_cluster_names_the_peer_and_its_own_part_only() -> None:
    member = DaskView(cluster_id="c1", scheduler_id=BETA, scheduler_name="beta", worker_here=True)

    assert cluster_row(member) == "Dask cluster on beta: this machine runs a worker"
    assert peer_row(member, BETA) == "Runs the Dask scheduler"
    assert peer_row(member, GAMMA) == ""  # only beta knows; `noizylab dask status` asks it
    assert peer_row(DaskView(), BETA) == ""


def _children_shown(console: TaskConsole) -> dict[str, dict[str, str]]:
    """The console's supervised-processes rows, by process name, as a person reads them; {} while the section hides."""
    if console.supervised.isHidden():
        return {}
    table = console.child_table
    rows = {}
    for row in range(table.rowCount()):
        cells = [table.item(row, c) for c in range(table.columnCount())]
        texts = dict(zip(CHILD_COLUMNS, (c.text() if c is not None else "" for c in cells), strict=True))
        rows[texts["Process"]] = texts
    return rows


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="the dask extra is not installed")
def test_the_task_console_lists_the_cluster_s_scheduler_and_worker_with_pid_state_and_uptime(
    run: Run, tmp_path: Path
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")

    def noizylab(*args: str) -> None:
        command = [sys.executable, "-m", "noizylab_desktop", "--home", str(tmp_path / "desk"), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            tasks = next(e for e in app.tray.extensions if isinstance(e, TasksTray))
            console = tasks.open_console()
            assert _children_shown(console) == {}  # nothing supervised yet: the section hides

            await asyncio.to_thread(noizylab, "dask", "up")
            rows = await eventually(
                lambda: (shown := _children_shown(console)) and all(r["State"] == "running" for r in shown.values())
                and shown, 30, "the scheduler and the worker in the console",
            )  # fmt: skip
            assert sorted(rows) == ["dask-scheduler", "dask-worker"]
            ours = {p.pid for p in psutil.Process().children(recursive=True)}
            for row in rows.values():
                assert int(row["PID"]) in ours, row
                assert row["Restarts"] == "0" and row["Uptime"].endswith(("s", "m")), row
            assert rows["dask-scheduler"]["Role"].startswith("Dask scheduler of cluster ")
            assert " at tls://127.0.0.1:" in rows["dask-worker"]["Role"]

            await asyncio.to_thread(noizylab, "dask", "down")
            await eventually(lambda: _children_shown(console) == {}, 20, "the section to empty after dask down")

    run(scenario())
