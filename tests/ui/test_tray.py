"""The tray under a real X server (Xvfb) with trayer as the tray host, hosting an in-process node on qasync."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from noizylab_desktop.core.nodeid import short_id
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from tests.conftest import NodeProcess
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import Row, action, embedded_in_trayer, icon_window, open_menu, rows_of
from tests.ui.waiting import Run, eventually, expect, within

PEER_TIMEOUT_S = 20.0


def test_the_icon_sits_in_the_tray_and_its_menu_names_this_node(
    run: Run, tray_app: QApplication, tmp_path: Path
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            tray = app.tray
            assert QSystemTrayIcon.isSystemTrayAvailable()
            assert tray.icon.isVisible()
            await eventually(lambda: embedded_in_trayer(icon_window(tray_app)), 10, "trayer to embed the icon")
            assert tray.icon.geometry().isValid()

            rows = await open_menu(tray)

            assert rows == [
                Row(f"desk ({short_id(app.node.identity.node_id)})", enabled=False, dot=""),
                Row("No paired devices yet", enabled=False, dot=""),
                Row("Task console…", enabled=True, dot=""),
                Row("Dask cluster: not running", enabled=False, dot=""),
                Row("Pause clipboard sync", enabled=True, dot=""),
                Row("Dashboard…", enabled=True, dot=""),
                Row("Rename this machine…", enabled=True, dot=""),
                Row("Pair a device…", enabled=True, dot=""),
                Row("Start at login", enabled=True, dot=""),
                Row("Settings…", enabled=True, dot=""),
                Row("About NOIZYLAB", enabled=True, dot=""),
                Row("Quit NOIZYLAB", enabled=True, dot=""),
            ]
            assert tray.icon.toolTip().splitlines()[0] == "NOIZYLAB — no paired devices yet"

    run(scenario())


def test_the_menu_follows_a_paired_peer_from_online_to_offline_and_says_why_it_is_unreachable(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    peer = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            # The peer's CLI talks to our pairing port, so the loop must keep serving while it runs.
            await asyncio.to_thread(peer.join, code)
            await within(online, PEER_TIMEOUT_S, "the tray's node to see the laptop online")
            assert app.tray.icon.toolTip().splitlines()[0] == "NOIZYLAB — 1 of 1 peer online"

            rows = await open_menu(app.tray)
            laptop = next(r for r in rows if r.text.startswith("laptop"))
            assert laptop.text.startswith("laptop — online") and laptop.dot == "green"

            # The peer's submenu says what it may do here: nothing yet; ticking a switch allows it for good.
            row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
            submenu = row.menu()
            assert submenu is not None
            switches = {a.text(): a for a in submenu.actions() if a.isCheckable()}
            keep(submenu, "tray-peer-submenu")
            assert "Run commands and jobs on this machine" in switches
            assert not any(a.isChecked() for a in switches.values())
            switches["Run commands and jobs on this machine"].trigger()
            laptop_fp = app.node.trust.peers()[0].fingerprint
            assert app.node.permissions.allowed(laptop_fp, "tasks")
            assert not app.node.permissions.allowed(laptop_fp, "display")

            address = await asyncio.to_thread(lambda: peer.grpc_address)
            offline = expect(app.bridge.peer_offline)
            await asyncio.to_thread(peer.stop)
            await within(offline, PEER_TIMEOUT_S, "the tray's node to see the laptop go offline")

            # The bridge's signal already rebuilt the menu and the tooltip, before anyone opens the menu.
            assert app.tray.icon.toolTip().splitlines()[0] == "NOIZYLAB — 0 of 1 peer online"
            assert Row("laptop — offline", enabled=True, dot="hollow") in rows_of(app.tray.menu.actions())
            assert Row("laptop — offline", enabled=True, dot="hollow") in await open_menu(app.tray)

            # Check connections… says why, in the doctor's words: nothing listens where the laptop was.
            checked = expect(app.tray.doctor.checked)
            action(app.tray, "Check connections…").trigger()
            (lines,) = await within(checked, PEER_TIMEOUT_S, "the connection check to end")
            assert app.tray.doctor.isVisible() and app.tray.doctor.lines() == lines
            refused = (
                f"laptop: nothing listens at {address}: its node is not running (start it there with `noizylab start`)"
            )
            assert refused in lines
            app.tray.doctor.reject()

    run(scenario())


def test_quit_in_the_menu_stops_the_node_and_ends_the_app(run: Run, tmp_path: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    app = TrayApp(Node(paths, settings))

    async def scenario() -> int:
        running = asyncio.ensure_future(app.run())
        await eventually(lambda: app.tray is not None and app.tray.icon.isVisible(), 30, "the tray icon")
        assert paths.runtime_file.exists()
        assert app.tray is not None
        action(app.tray, "Quit NOIZYLAB").trigger()
        return await within(running, 10, "the app to end after Quit")

    assert run(scenario()) == 0
    assert not paths.runtime_file.exists()
    assert app.tray is not None and not app.tray.icon.isVisible()


def test_a_peer_that_unpairs_this_machine_shows_as_having_removed_it(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    peer = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(peer.join, code)
            await within(online, PEER_TIMEOUT_S, "the tray's node to see the laptop online")

            offline = expect(app.bridge.peer_offline)
            # The laptop tells this node over the wire, so the loop must keep serving while its command runs.
            await asyncio.to_thread(peer.cli, "unpair", "desk")
            await within(offline, PEER_TIMEOUT_S, "the tray's node to hear that the laptop removed it")

            assert Row("laptop — removed this machine", enabled=True, dot="hollow") in rows_of(app.tray.menu.actions())

    run(scenario())
