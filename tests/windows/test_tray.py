"""The tray on Windows: Qt's real ``windows`` platform plugin under Xvfb (Wine draws through X), the node hosted on
qasync, whose Windows loop has no asyncio subprocess support. The tray's node pairs with a Linux node, its menu lists
that peer, a task runs on it (started with ``subprocess.Popen``, not the loop), and ``noizylab stop`` ends it. The
menu and the whole screen (read through GDI) are kept as pictures in ``build/artefacts/screenshots/``.

What Wine cannot show, and real Windows can: the tray's geometry (empty under Wine, so the menu is popped up at a
fixed point) and the notification area's own look.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NodeProcess, wait_for
from tests.screenshots import FOLDER
from tests.slowness import scaled
from tests.windows.conftest import LinuxNode, pair


class TrayProcess:
    """``tests/windows/tray_script.py`` running the tray for one home; one JSON line per request."""

    def __init__(self, home: Path) -> None:
        # By its path: the embeddable build's ._pth leaves the working folder off sys.path, so -m would not find it.
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("tray_script.py")), str(home), str(FOLDER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the tray exited {self.process.wait(scaled(30))}: {self.stderr()[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, request: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        return self.read()

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read() if self.process.poll() is not None else ""

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=scaled(30))


@pytest.fixture
def tray_home(tmp_path: Path) -> Iterator[tuple[NodeProcess, TrayProcess]]:
    """The tray running for the home of ``omen``: ``omen``'s commands reach the tray's node."""
    omen = NodeProcess(tmp_path / "omen", "omen")
    tray = TrayProcess(omen.home)
    try:
        yield omen, tray
    finally:
        tray.end()


def test_the_tray_on_the_windows_plugin_hosts_the_node_on_qasync_and_its_menu_lists_the_peer(
    tray_home: tuple[NodeProcess, TrayProcess], make_linux_node: Callable[..., LinuxNode]
) -> None:
    omen, tray = tray_home
    shown = tray.read()
    assert shown == {"platform": "windows", "tray_available": True, "loop": "qasync", "visible": True}
    status = omen.status()
    assert status["name"] == "omen" and status["pid"] == tray.process.pid, "the home's node is the tray's"

    linux = make_linux_node("penguin").start()
    pair(omen, linux)
    rows = tray.ask("menu")["rows"]
    texts = [r["text"] for r in rows]
    assert texts[0].startswith("omen (") and not rows[0]["enabled"]
    peer = next(r for r in rows if r["text"].startswith("penguin — "))
    assert peer["submenu"] and peer["text"].startswith("penguin — online, ")
    assert "No paired devices yet" not in texts and texts[-1] == "Quit NOIZYLAB"
    assert (FOLDER / "windows-tray-menu.png").stat().st_size > 0
    assert (FOLDER / "windows-tray-screen.png").stat().st_size > 0

    # A task on the tray's node: qasync's Windows loop cannot start subprocesses, so the task runs through Popen.
    script = "import sys; print('from the tray node'); sys.exit(3)"
    ran = omen.cli("run", "--on", "self", "--", sys.executable, "-c", script, check=False)
    assert (ran.returncode, ran.stdout) == (3, "from the tray node\n"), ran.stderr
    omen.cli("allow", "penguin", "tasks")
    asked = linux.cli("run", "--on", "omen", "--", sys.executable, "-c", "print('asked from Linux')", check=False)
    assert (asked.returncode, asked.stdout) == (0, "asked from Linux\n"), asked.stderr

    omen.cli("stop")
    assert tray.process.wait(scaled(60)) == 0, tray.stderr()
    wait_for(lambda: not (linux.peer("omen") or {}).get("online"), timeout=30, what="penguin to see omen go")
