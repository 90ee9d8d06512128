"""Folder sync in the tray: each share's state in the ``Folder sync`` submenu, and pause/resume from there."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMenu

from noizylab_desktop.node.node import Node
from noizylab_desktop.services.sync.manager import ShareManager
from noizylab_desktop.services.sync.store import Share, ShareStore
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.sync_tray import share_label
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import action, rows_of
from tests.ui.waiting import Run, eventually


def test_share_rows_show_state_and_the_progress_of_large_transfers() -> None:
    assert share_label("/home/me/Photos", "beta", "idle", "in sync", 0, 0) == "Photos ↔ beta: idle (in sync)"
    big = 100 * 1024 * 1024
    assert (
        share_label("/p/Video", "beta", "syncing", "3 changes", big // 4, big)
        == "Video ↔ beta: syncing 25% (3 changes)"
    )
    assert share_label("/p/Docs", "beta", "syncing", "1 change", 10, 100) == "Docs ↔ beta: syncing (1 change)"


def test_the_folder_sync_menu_lists_shares_and_pauses_them(run: Run, tray_app: QApplication, tmp_path: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    settings = settings.with_section("sync", {"folder": str(tmp_path / "sync")})
    (tmp_path / "Photos").mkdir()
    # A share to a NAS, paused before the node starts, so that no connection is tried in this test.
    store = ShareStore(paths.state_dir / "sync" / "shares.sqlite")
    store.put(
        Share(
            "0123456789ab",
            str(tmp_path / "Photos"),
            "ssh://me@127.0.0.1:1",
            "nas",
            "/photos",
            "",
            True,
            "paused by you",
        )
    )
    store.close()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            manager = app.node.features["sync"].manager
            assert isinstance(manager, ShareManager)

            def share_row() -> QMenu:
                menu = action(app.tray, "Folder sync").menu()
                assert isinstance(menu, QMenu)
                row = menu.actions()[0].menu()
                assert isinstance(row, QMenu)
                return row

            engine = manager.engines["0123456789ab"]
            await eventually(lambda: engine.state == "paused", 10, "the engine to see the share paused")
            assert share_row().title() == "Photos ↔ nas: paused (paused by you)"
            assert [a.text() for a in share_row().actions()][:2] == ["Open folder", "Resume"]
            assert rows_of(share_row().actions())[-1].text == "0 files, 0 conflicts"
            keep(action(app.tray, "Folder sync").menu(), "tray-sync-submenu")
            keep(share_row(), "tray-sync-share")
            manager.store.put(replace(manager.store.shares()[0], reason="this sync would delete 40 of 50 files"))
            assert share_row().title() == "Photos ↔ nas: paused (this sync would delete 40 of 50 files)"

    run(scenario())
