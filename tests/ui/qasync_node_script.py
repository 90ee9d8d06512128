"""Host a ``Node`` on qasync over an offscreen QApplication, pair it with a running node process, check both ways.

Run by ``test_qasync_node.py`` as ``python qasync_node_script.py HOME PEER_HOME`` with ``QT_QPA_PLATFORM=offscreen``;
prints one JSON object with what each side saw, and exits non-zero if anything failed (a crash shows as a signal).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import qasync
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.qt_async import runner

T = TypeVar("T")
TIMEOUT_S = 20.0
GET_INFO = "/noizylab.grid.v1.Node/GetInfo"


def cli(home: Path, *args: str) -> Any:
    """``noizylab --home HOME ARGS --json``, parsed (blocking: call it in a thread)."""
    command = [sys.executable, "-m", "noizylab_desktop", "--home", str(home), *args, "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


async def until(condition: Callable[[], T | None], what: str) -> T:
    """Poll ``condition`` while the loop serves; fail after ``TIMEOUT_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while not (found := condition()):
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


async def until_in_thread(condition: Callable[[], T | None], what: str) -> T:
    """Like ``until`` for a blocking condition (a command line call), run in a worker thread each time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while not (found := await asyncio.to_thread(condition)):
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return found


async def scenario(home: Path, peer_home: Path) -> dict[str, Any]:
    paths = Paths.resolve(home)
    node = Node(paths, load_settings(paths))
    await node.start()
    try:
        code, _ = await node.create_invite([])
        outcome = asyncio.ensure_future(node.pairing.wait(code, TIMEOUT_S))
        joined = await asyncio.to_thread(cli, peer_home, "pair", "join", code)
        paired = await outcome

        state = await until(lambda: next((s for s in node.registry.peers() if s.online), None), "the peer online")
        info = await pb_grpc.NodeStub(node.registry.channel(state)).GetInfo(pb.Empty(), timeout=5)

        def seen_by_peer() -> dict[str, Any] | None:
            return next((p for p in cli(peer_home, "peers") if p["online"] and p["os"]), None)

        # The peer reads our capabilities with GetInfo once it sees us online; our Guard counts that call.
        view = await until_in_thread(seen_by_peer, "the peer to see this node online with its capabilities")
        status = await asyncio.to_thread(cli, home, "status")
        return {
            # The tray's loop is qasync's, subclassed (ui/qt_async.py: callbacks batched).
            "loop": "qasync" if isinstance(asyncio.get_running_loop(), qasync.QEventLoop) else "other",
            "platform": QGuiApplication.platformName(),
            "verification_here": paired.verification,
            "verification_there": joined["verification"],
            "peer_online_here": state.online,
            "peer_info": {"id": info.id, "name": info.name},
            "seen_by_peer": {"id": view["id"], "name": view["name"], "online": view["online"]},
            "get_info_served": node.guard.handled[GET_INFO],
            "status_via_cli": {"id": status["id"], "name": status["name"]},
        }
    finally:
        await node.stop()


def main() -> int:
    home, peer_home = (Path(arg) for arg in sys.argv[1:3])
    app = QApplication([sys.argv[0]])
    with runner(app) as loop:
        print(json.dumps(loop.run(scenario(home, peer_home))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
