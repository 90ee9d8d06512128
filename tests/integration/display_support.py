"""Fixtures and helpers for the display tests: the host's own Xvfb, the helper app on it, and a viewer in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from noizylab_desktop.core.transport import secure_channel
from noizylab_desktop.services.display.client import ViewerSession
from tests.conftest import NOIZYLAB, NodeProcess, start_all, wait_for
from tests.slowness import scaled

SCREEN_APP = Path(__file__).with_name("display_screen.py")


class ScreenApp:
    """``display_screen.py MODE ARGS`` on ``display``; its stdout lines are read with a deadline."""

    def __init__(self, display: str, *args: str) -> None:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        self.process = subprocess.Popen(
            [sys.executable, str(SCREEN_APP), *args], env=env, stdout=subprocess.PIPE, bufsize=0
        )
        self.seen: list[str] = []
        self._pending = b""
        self.expect("ready", 20)

    def line(self, timeout: float) -> str | None:
        """The next line it prints, or None after ``timeout`` seconds.

        Reads the pipe's raw bytes itself: ``select`` on a buffered reader misses lines already in its buffer, so a
        burst of lines arriving in one read looked lost until the next one came.
        """
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._pending += chunk
        raw, self._pending = self._pending.split(b"\n", 1)
        line = raw.decode().strip()
        self.seen.append(line)
        return line

    def expect(self, prefix: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            line = self.line(deadline - time.monotonic())
            if line is None:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"the helper app did not print {prefix!r} within {timeout} s; it printed {self.seen[-8:]}")

    def finish(self) -> list[str]:
        """Stop it and return the lines it printed that were not read yet."""
        assert self.process.stdout is not None
        self.process.terminate()
        rest = self._pending + self.process.stdout.read()
        self._pending = b""
        self.stop()
        return rest.decode().splitlines()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def grab_screen(display: str) -> np.ndarray[Any, Any]:
    """The host's whole screen as RGB, read straight from the X server (the reference for PSNR)."""
    import mss

    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        with mss.MSS() as sct:
            shot = sct.grab(sct.monitors[1])
            bgra = np.frombuffer(shot.raw, np.uint8).reshape(shot.height, shot.width, 4)
    finally:
        if previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous
    return bgra[:, :, 2::-1].copy()


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Peak signal-to-noise ratio of two same-sized 8-bit pictures, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def viewer(host: NodeProcess, viewer_node: NodeProcess, **options: Any) -> ViewerSession:
    """A viewing session from ``viewer_node``'s identity straight to ``host`` (as ``noizylab view`` makes one)."""
    channel = secure_channel(viewer_node.identity(), host.identity().cert_pem, host.grpc_address)
    return ViewerSession(channel, host.name, **options)


def run(coro: Any, timeout: float = 60) -> Any:
    """Run a scenario on a fresh loop with a deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def host_display(display: str) -> Iterator[None]:
    """Set DISPLAY for the node processes started meanwhile (they inherit it)."""
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous


def start_pair(host: NodeProcess, viewer_node: NodeProcess, display: str, *allowed: str) -> None:
    """Start ``host`` on ``display`` and ``viewer_node`` beside it, pair them, and allow the viewer ``allowed``."""
    for _ in host_display(display):
        start_all(host, viewer_node)
    viewer_node.join(host.invite())
    wait_for(lambda: (viewer_node.peer(host.name) or {}).get("online"), what=f"{viewer_node.name} to see {host.name}")
    if allowed:
        host.cli("allow", viewer_node.name, *allowed)


def ask_to_close(display: str, window: int) -> None:
    """Send ``WM_DELETE_WINDOW`` to ``window``, as a window manager's close button does."""
    from Xlib import X, protocol
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        target = conn.create_resource_object("window", window)
        delete = conn.intern_atom("WM_DELETE_WINDOW")
        event = protocol.event.ClientMessage(
            window=target, client_type=conn.intern_atom("WM_PROTOCOLS"), data=(32, [delete, X.CurrentTime, 0, 0, 0])
        )
        target.send_event(event, event_mask=X.NoEventMask)
        conn.sync()
    finally:
        conn.close()


def split_into_monitors(display: str, rects: list[tuple[int, int, int, int]]) -> Any:
    """Make ``display``'s one screen show as monitors (RandR 1.5 ``SetMonitor``, what ``xrandr --setmonitor`` does).

    The first rectangle takes over the screen's output (replacing its automatic monitor) and is the primary one.
    python-xlib's own ``set_monitor`` cannot pack its request, so the request is declared flat here. Returns the
    open connection: close it at the end, not before, since Xvfb resets (monitors and all) when its last client leaves.
    """
    from Xlib import display as xdisplay
    from Xlib.ext import randr
    from Xlib.protocol import rq

    class SetMonitor(rq.Request):
        _request = rq.Struct(
            rq.Card8("opcode"), rq.Opcode(43), rq.RequestLength(), rq.Window("window"),
            rq.Card32("name"), rq.Bool("primary"), rq.Bool("automatic"), rq.LengthOf("outputs", 2),
            rq.Int16("x"), rq.Int16("y"), rq.Card16("width_in_pixels"), rq.Card16("height_in_pixels"),
            rq.Card32("width_in_millimeters"), rq.Card32("height_in_millimeters"), rq.List("outputs", rq.Card32Obj),
        )  # fmt: skip

    conn = xdisplay.Display(display)
    try:
        root = conn.screen().root
        outputs = root.xrandr_get_monitors().monitors[0].crtcs  # python-xlib names a monitor's outputs "crtcs"
        opcode = conn.display.get_extension_major(randr.extname)
        for i, (x, y, width, height) in enumerate(rects):
            SetMonitor(
                display=conn.display, opcode=opcode, window=root, name=conn.intern_atom(f"NOIZYLAB-{i + 1}"),
                primary=i == 0, automatic=False, x=x, y=y, width_in_pixels=width, height_in_pixels=height,
                width_in_millimeters=width * 254 // 960, height_in_millimeters=height * 254 // 960,
                outputs=outputs if i == 0 else [],
            )  # fmt: skip
        conn.sync()
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def recording(viewer_node: NodeProcess, host: str, out: Path, seconds: int) -> Iterator[subprocess.Popen[str]]:
    """``viewer_node`` records ``host``'s screen to ``out`` for ``seconds`` (``view --record --json``), entered once
    the recording has begun; killed on the way out if it still runs."""
    viewer = subprocess.Popen(
        [*NOIZYLAB, "--home", str(viewer_node.home), "view", host, "--record", str(out), "--duration", str(seconds)]
        + ["--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: out.exists() and out.stat().st_size > 0, 20, "the recording to start")
        yield viewer
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait()


def recorded(viewer: subprocess.Popen[str]) -> dict[str, Any]:
    """The summary a recording prints when it ends by itself; it must end well (a session the host ended fails)."""
    stdout, stderr = viewer.communicate(timeout=scaled(60))
    assert viewer.returncode == 0, stderr
    return dict(json.loads(stdout))
