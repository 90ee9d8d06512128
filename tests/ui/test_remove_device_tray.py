"""Removing a device from the tray: a peer's submenu offers "Remove this device…", which asks first and then reaches
every member of the grid, not only this machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from tests.conftest import NodeProcess, start_all
from tests.ui.conftest import node_settings
from tests.ui.waiting import Run, eventually, expect, within


async def until_trusts(machine: NodeProcess, name: str, trusted: bool) -> None:
    """Until ``machine`` does (or does not) list a peer called ``name`` (each look is a command, off the loop)."""
    while (await asyncio.to_thread(machine.peer, name) is not None) != trusted:
        await asyncio.sleep(0.2)


def test_remove_this_device_from_a_peers_submenu_reaches_the_whole_grid(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    laptop, tablet = start_all(make_node("laptop"), make_node("tablet"))

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            for machine in (laptop, tablet):
                code, _ = await app.node.create_invite([])
                online = expect(app.bridge.peer_online)
                await asyncio.to_thread(machine.join, code)
                await within(online, 20, f"the tray's node to see {machine.name} online")
            # The tablet met the laptop only through this machine's introduction.
            await within(until_trusts(tablet, "laptop", True), 10, "the tablet to trust the laptop")

            questions: list[str] = []
            app.tray.confirm = lambda question: questions.append(question) or True  # the person says yes
            app.tray.menu.aboutToShow.emit()
            row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
            assert row.menu() is not None
            remove = next(a for a in row.menu().actions() if a.text() == "Remove this device…")
            remove.trigger()
            assert questions == [
                "Remove laptop from the grid? Every member will refuse it from now on, and what it has open ends."
            ]
            await eventually(lambda: [p.name for p in app.node.trust.peers()] == ["tablet"], 10, "laptop gone here")
            await within(until_trusts(tablet, "laptop", False), 10, "the tablet to drop the laptop too")
            shown = await asyncio.to_thread(tablet.json, "devices", "list")
            listed = {d["name"]: d["state"] for d in shown["devices"]}
            assert listed["laptop"] == "removed"

    run(scenario())
