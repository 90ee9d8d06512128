"""The tray's "Send a file…": a file picked in a peer's submenu lands in the peer's folder, and the person hears
that it got there; a file a peer sends here is announced with where it was saved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.files_tray import SEND_ROW, FilesTray
from tests.conftest import NodeProcess, write_config
from tests.ui.waiting import Run, eventually, expect, within

PEER_TIMEOUT_S = 20.0


def test_send_a_file_from_a_peers_submenu_and_hear_of_a_file_that_arrives(
    run: Run, tmp_path: Path, make_node: Callable[..., NodeProcess]
) -> None:
    inbox, laptop_inbox = tmp_path / "desk-inbox", tmp_path / "laptop-inbox"
    write_config(tmp_path / "desk", "desk", files={"folder": str(inbox)})
    paths = Paths.resolve(tmp_path / "desk")
    paths.ensure()
    laptop = make_node("laptop", files={"folder": str(laptop_inbox)}).start()
    picked = tmp_path / "holiday.jpg"
    picked.write_bytes(b"\xff\xd8 not really a jpeg" * 1000)
    back = tmp_path / "reply.txt"
    back.write_text("thanks")

    async def scenario() -> None:
        async with TrayApp(Node(paths, load_settings(paths))) as app:
            assert app.tray is not None and app.bridge is not None
            files = next(e for e in app.tray.extensions if isinstance(e, FilesTray))
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(laptop.join, code)
            await within(online, PEER_TIMEOUT_S, "the tray's node to see the laptop online")
            await asyncio.to_thread(laptop.cli, "allow", "desk", "files")

            app.tray.menu.aboutToShow.emit()
            row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
            submenu = row.menu()
            assert submenu is not None
            send = next(a for a in submenu.actions() if a.text() == SEND_ROW)
            assert send.isEnabled()
            asked: list[str] = []
            files.choose_file = lambda peer: asked.append(peer) or str(picked)  # the file dialog's answer
            send.trigger()

            await eventually(lambda: (laptop_inbox / "holiday.jpg").exists(), 20, "the file to reach the laptop")
            assert asked == ["laptop"]
            assert (laptop_inbox / "holiday.jpg").read_bytes() == picked.read_bytes()
            await eventually(lambda: files.notifier.shown, 10, "a notification that the file got there")
            assert [(title, body) for _, title, body in files.notifier.shown] == [
                ("Sent holiday.jpg to laptop", "19.5 KB")
            ]

            # The other way: the person here must allow it first (the switch in the laptop's submenu).
            app.tray.menu.aboutToShow.emit()
            row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
            assert row.menu() is not None
            switch = next(a for a in row.menu().actions() if a.isCheckable() and "Send files" in a.text())
            switch.trigger()
            await asyncio.to_thread(laptop.cli, "send", "desk", str(back))
            await eventually(lambda: len(files.notifier.shown) == 2, 10, "a notification of the arrival")
            assert files.notifier.shown[1][1:] == ("laptop sent you reply.txt", f"6 B, saved in {inbox}")
            assert (inbox / "reply.txt").read_text() == "thanks"

    run(scenario())
