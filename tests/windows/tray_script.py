"""The tray app on Windows, as ``noizylab`` runs it: Qt's ``windows`` platform plugin, the node hosted on qasync (whose
Windows loop has no asyncio subprocess support), the icon in the system tray.

Run by ``test_tray.py`` as ``python tray_script.py HOME SHOTS``. It starts the
tray's node, then prints one JSON line per request on stdin:

    ready   -> {"platform", "tray_available", "loop", "visible"}      (printed unasked once the icon shows)
    menu    -> {"rows": [...]} after popping the menu up as a click does, with screenshots in SHOTS: the menu as Qt
               draws it (``windows-tray-menu.png``) and the whole screen through GDI (``windows-tray-screen.png``)

and exits 0 once the node stops (``noizylab stop``, or stdin closing); non-zero if anything failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Any

import mss
import mss.tools
import qasync
from PySide6.QtCore import QPoint
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QSystemTrayIcon

from noizylab_desktop.core.config import Paths, Settings, load_settings
from noizylab_desktop.node.launcher import holding_home, setup_logging
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp, application
from noizylab_desktop.ui.qt_async import runner


def say(what: dict[str, Any]) -> None:
    print(json.dumps(what), flush=True)


async def menu_rows(tray_app: TrayApp, shots: Path) -> dict[str, Any]:
    tray = tray_app.tray
    assert tray is not None
    menu = tray.menu
    # Under Wine the icon's geometry is empty (WINDOWS.md): the menu pops up where a click near the corner would.
    menu.popup(QPoint(40, 40))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not menu.isVisible():
        if loop.time() > deadline:
            raise TimeoutError("the tray menu did not show")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # let it paint before the screen is read (a picture for people; nothing is asserted)
    rows = [
        {"text": a.text(), "enabled": a.isEnabled(), "submenu": a.menu() is not None}
        for a in menu.actions()
        if not a.isSeparator()
    ]
    shots.mkdir(parents=True, exist_ok=True)
    menu.grab().save(str(shots / "windows-tray-menu.png"))
    with mss.MSS() as screen:
        shot = screen.grab(screen.monitors[1])
        mss.tools.to_png(shot.rgb, shot.size, output=str(shots / "windows-tray-screen.png"))
    menu.hide()
    return {"rows": rows}


async def serve(tray_app: TrayApp, shots: Path) -> None:
    """Answer requests on stdin until it closes; then stop the node."""
    # A daemon thread reads stdin: a worker of the loop's executor blocked in readline would hold the process open
    # after the node stopped (the runner waits for its executor), so ``noizylab stop`` would end in a kill.
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is asking any more
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=read, daemon=True).start()
    while True:
        line = (await lines.get()).strip()
        if not line:
            tray_app.node.request_stop()
            return
        if line == "menu":
            say(await menu_rows(tray_app, shots))
        else:
            say({"error": f"unknown request {line!r}"})


async def scenario(paths: Paths, settings: Settings, shots: Path) -> int:
    tray_app = TrayApp(Node(paths, settings))
    requests: asyncio.Task[None] | None = None

    async def announce() -> None:
        nonlocal requests
        while tray_app.tray is None:
            await asyncio.sleep(0.05)
        say(
            {
                "platform": QGuiApplication.platformName(),
                "tray_available": QSystemTrayIcon.isSystemTrayAvailable(),
                # The tray's loop is qasync's, subclassed (ui/qt_async.py: callbacks batched).
                "loop": "qasync" if isinstance(asyncio.get_running_loop(), qasync.QEventLoop) else "other",
                "visible": tray_app.tray.icon.isVisible(),
            }
        )
        requests = asyncio.ensure_future(serve(tray_app, shots))

    announcing = asyncio.ensure_future(announce())
    try:
        return await tray_app.run()
    finally:
        announcing.cancel()
        if requests is not None:
            requests.cancel()
        await tray_app.stop()


def main() -> int:
    """What ``ui.app.run_tray`` does, with this script's requests served beside the tray."""
    paths, shots = Paths.resolve(Path(sys.argv[1])), Path(sys.argv[2])
    paths.ensure()
    settings = load_settings(paths)
    app = application()
    setup_logging(paths, to_stderr=False)
    with holding_home(paths), runner(app) as loop:
        return loop.run(scenario(paths, settings, shots))


if __name__ == "__main__":
    raise SystemExit(main())
