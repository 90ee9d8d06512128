"""The tray's clipboard: Qt's clipboard syncs with a headless peer on another display, pausing is one remembered
click, the menu says where the last clip came from, and a password manager's copy stays with a notice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QMimeData
from PySide6.QtGui import QGuiApplication

from noizylab_desktop.node.node import Node
from noizylab_desktop.services.clipboard.feature import ClipboardFeature
from noizylab_desktop.ui.app import TrayApp
from tests.conftest import NodeProcess
from tests.integration.clipboard_support import copy, display_env, paste, xvfb
from tests.ui.conftest import node_settings
from tests.ui.menus import action, open_menu
from tests.ui.waiting import Run, eventually, expect, within

PEER_TIMEOUT_S = 20.0


def test_the_tray_syncs_qt_clipboard_with_a_peer_and_pauses_in_one_click(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    with xvfb() as laptop_display:
        with display_env(laptop_display):
            laptop = make_node("laptop").start()

        async def scenario() -> None:
            async with TrayApp(Node(paths, settings)) as app:
                assert app.tray is not None and app.bridge is not None
                feature = app.node.features["clipboard"]
                assert isinstance(feature, ClipboardFeature)
                await eventually(lambda: feature.backend is not None and feature.backend.name == "qt", 10, "qt")
                code, _ = await app.node.create_invite([])
                online = expect(app.bridge.peer_online)
                await asyncio.to_thread(laptop.join, code)
                await within(online, PEER_TIMEOUT_S, "the laptop to come online")
                await asyncio.to_thread(laptop.cli, "clip", "on", "desk")

                # The peer submenu's clipboard switch is the per-peer "clip on".
                row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
                submenu = row.menu()
                assert submenu is not None
                switch = next(
                    a for a in submenu.actions() if a.text() == "Exchange clipboard contents with this machine"
                )
                switch.trigger()

                clipboard = QGuiApplication.clipboard()
                clipboard.setText("copied in the tray app")
                await eventually(lambda: paste(laptop_display) == b"copied in the tray app", 10, "text on the laptop")

                await asyncio.to_thread(copy, laptop_display, b"<i>from the laptop</i>", "text/html")
                await eventually(lambda: clipboard.mimeData().html() == "<i>from the laptop</i>", 10, "html here")
                rows = [r.text for r in await open_menu(app.tray)]
                assert any(r.startswith("Last clip from laptop at ") for r in rows), rows

                secret = QMimeData()
                secret.setText("hunter2")
                secret.setData("x-kde-passwordManagerHint", QByteArray(b"secret"))
                clipboard.setMimeData(secret)
                await eventually(lambda: feature.counters["skipped_secret"] == 1, 10, "the secret to be kept")
                rows = [r.text for r in await open_menu(app.tray)]
                assert "Clipboard: a password manager's copy stays on this machine" in rows
                assert paste(laptop_display) == b"<i>from the laptop</i>", "the laptop kept its own last copy"

                action(app.tray, "Pause clipboard sync").trigger()
                await eventually(lambda: "paused = true" in paths.config_file.read_text(), 5, "the pause saved")
                assert action(app.tray, "Pause clipboard sync").isChecked()
                clipboard.setText("typed while paused")
                await eventually(lambda: feature.counters["skipped_paused"] == 1, 10, "the copy to be kept")
                assert feature.counters["copies"] == 2 and feature.counters["sends"] == 1
                assert paste(laptop_display) == b"<i>from the laptop</i>"

        try:
            run(scenario())
        finally:
            # This process must not stay the session display's clipboard owner: it does not answer X requests
            # while a later test blocks, and a program reading the clipboard then waits for nothing.
            QGuiApplication.clipboard().clear()
            laptop.stop()
