"""Renaming this machine from the tray: the menu's first row shows the new name, the config keeps it, and a paired
machine learns it with the next heartbeat; unpairing a peer from its submenu, which that peer is told."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path

from noizylab_desktop.core.nodeid import short_id
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from tests.conftest import NodeProcess
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import action, open_menu
from tests.ui.waiting import Run, eventually, expect, within


async def called(peer: NodeProcess, name: str) -> None:
    """Until ``peer`` lists a peer called ``name`` (each look is a command, off the loop)."""
    while not await asyncio.to_thread(peer.peer, name):
        pass


def test_rename_this_machine_from_the_tray(run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    laptop = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(laptop.join, code)
            await within(online, 20, "the tray's node to see the laptop online")

            asked: list[str] = []
            app.tray.ask_name = lambda current: asked.append(current) or "studio"  # the dialog's answer
            action(app.tray, "Rename this machine…").trigger()

            assert asked == ["desk"]
            rows = await open_menu(app.tray)
            assert rows[0].text == f"studio ({short_id(app.node.identity.node_id)})"
            app.tray.menu.popup(app.tray.icon.geometry().bottomLeft())
            await eventually(app.tray.menu.isVisible, 5, "the menu to show")
            keep(app.tray.menu, "tray-menu")
            app.tray.menu.hide()
            assert tomllib.loads(paths.config_file.read_text())["name"] == "studio"
            await within(called(laptop, "studio"), 10, "the laptop to call this machine studio")

            questions: list[str] = []
            app.tray.confirm = lambda question: questions.append(question) or True  # the person says yes
            app.tray.menu.aboutToShow.emit()
            row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
            assert row.menu() is not None
            unpair = next(a for a in row.menu().actions() if a.text() == "Unpair laptop…")
            unpair.trigger()
            assert questions == ["Unpair laptop? It will no longer reach this machine, and laptop will say so."]
            await eventually(lambda: not app.node.trust.peers(), 10, "the laptop to be forgotten here")
            seen = await asyncio.to_thread(laptop.peer, "studio")
            assert seen is not None and seen["removed_at"], "the laptop was told it was removed"
            assert (await open_menu(app.tray))[1].text == "No paired devices yet"

    run(scenario())
