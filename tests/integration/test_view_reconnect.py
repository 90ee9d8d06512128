"""``noizylab view PEER`` when the host's node stops: the window waits ("disconnected — reconnecting…" on the
terminal too), comes back with the host, and ends with the reason when the host does not come back in time.

Alpha shares an Xvfb screen showing a test pattern; beta runs ``noizylab view alpha`` as a person would.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import NOIZYLAB, NodeProcess
from tests.integration.display_support import ScreenApp, ask_to_close, host_display, start_pair
from tests.slowness import scaled
from tests.xvfb import Xvfb

TITLE = "alpha — NOIZYLAB remote desktop"


class Viewer:
    """``noizylab view alpha`` on ``display``, its stderr read line by line as it comes."""

    def __init__(self, beta: NodeProcess, display: str) -> None:
        self.env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        command = [*NOIZYLAB, "--home", str(beta.home), "view", "alpha", "--view-only"]
        self.process = subprocess.Popen(command, env=self.env, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def window(self) -> int:
        found = subprocess.run(["xdotool", "search", "--sync", "--name", TITLE], env=self.env, capture_output=True,
                               text=True, timeout=scaled(30))  # fmt: skip
        return int(found.stdout.split()[0])

    def says(self, wanted: str, timeout: float) -> None:
        """Wait until the viewer prints ``wanted`` on stderr."""
        try:
            while (line := self.lines.get(timeout=scaled(timeout))) != wanted:
                self.said.append(line)
        except queue.Empty:
            raise AssertionError(f"the viewer did not print {wanted!r} within {timeout} s: {self.said}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(scaled(10))  # it reads to the end of the pipe, which closed with the process
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def grid(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, Xvfb]]:
    screen = Xvfb("640x480")
    pattern = ScreenApp(screen.display, "pattern")
    alpha = NodeProcess(tmp_path / "alpha", "alpha", display={"encoders": ["libx264"]})
    beta = NodeProcess(tmp_path / "beta", "beta")
    try:
        start_pair(alpha, beta, screen.display, "display")
        yield alpha, beta, screen
    finally:
        alpha.stop()
        beta.stop()
        pattern.stop()
        screen.stop()


def test_view_waits_for_a_stopped_host_and_comes_back_with_it(grid: tuple[NodeProcess, NodeProcess, Xvfb]) -> None:
    alpha, beta, screen = grid
    viewer = Viewer(beta, screen.display)
    try:
        window = viewer.window()
        alpha.stop()
        viewer.says("alpha: disconnected — reconnecting…", 5)
        assert viewer.process.poll() is None, "the viewer quit instead of waiting for the host"
        for _ in host_display(screen.display):
            alpha.start()
        viewer.says("alpha: connected again", 30)
        ask_to_close(screen.display, window)
        assert viewer.process.wait(scaled(20)) == 0
    finally:
        viewer.stop()


def test_view_ends_with_the_reason_when_the_host_does_not_come_back(
    grid: tuple[NodeProcess, NodeProcess, Xvfb],
) -> None:
    alpha, beta, screen = grid
    config = beta.home / "config.toml"
    config.write_text(tomli_w.dumps({**tomllib.loads(config.read_text()), "display": {"reconnect_s": 2}}))
    viewer = Viewer(beta, screen.display)
    try:
        viewer.window()
        alpha.stop()
        viewer.says("alpha: disconnected — reconnecting…", 5)
        assert viewer.process.wait(scaled(30)) == 1
        viewer.says("noizylab: error: alpha did not come back within 2 s (alpha's node is stopping)", 5)
    finally:
        viewer.stop()


def test_view_follows_a_host_that_rotates_its_identity_key(grid: tuple[NodeProcess, NodeProcess, Xvfb]) -> None:
    """The host's node restarts on its new key: the session pauses like a restart and comes back to the new key,
    which beta's node learned from the rotation (the viewer asks it again where alpha is and what it shows)."""
    alpha, beta, screen = grid
    viewer = Viewer(beta, screen.display)
    try:
        window = viewer.window()
        old_id = alpha.id

        rotated = alpha.json("keys", "rotate", "identity")

        assert rotated["old_id"] == old_id != rotated["id"] and rotated["told"] == ["beta"]
        viewer.says("alpha: disconnected — reconnecting…", 10)
        viewer.says("alpha: connected again", 30)
        assert (beta.peer("alpha") or {}).get("id") == rotated["id"]
        ask_to_close(screen.display, window)
        assert viewer.process.wait(scaled(20)) == 0
    finally:
        viewer.stop()
