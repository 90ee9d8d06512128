"""The tray's Dask rows: what the node knows of its cluster, read on every menu rebuild without asking any node."""

from __future__ import annotations

from pathlib import Path

from noizylab_desktop.node.node import Node
from noizylab_desktop.services.dask.view import DaskView
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.dask_tray import DaskTray, cluster_row, peer_row
from tests.ui.conftest import node_settings
from tests.ui.menus import open_menu
from tests.ui.waiting import Run

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
