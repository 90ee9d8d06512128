"""UI fixtures: a private Xvfb display with trayer as the system tray host, and the qasync loop for each test.

The display starts before pytest-qt's session ``qapp`` (through ``qapp_args``), so Qt connects to it with the xcb
platform. Each test runs its scenario on a fresh qasync loop that is closed before the test returns: timers of a
loop that is not running must never fire from pytest-qt's own ``processEvents``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from noizylab_desktop.core.config import Paths, Settings, load_settings
from noizylab_desktop.ui.app import application
from noizylab_desktop.ui.qt_async import runner
from tests.conftest import wait_for, write_config
from tests.slowness import scaled
from tests.ui.waiting import Run

T = TypeVar("T")
START_TIMEOUT_S = 10.0


def start_xvfb(*, detached: bool) -> tuple[int, str]:
    """An Xvfb on a free display number (it picks one and writes it to a pipe): its pid and display name.

    ``detached``: Xvfb is not our child and ends by itself when its last client leaves (``-terminate``). pytest-qt's
    QApplication lives until this process exits, and Qt exits with status 1 when its X server dies first.
    """
    read_end, write_end = os.pipe()
    command = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"]
    if detached:
        command = ["sh", "-c", f'{shlex.join([*command, "-terminate"])} >/dev/null 2>&1 & echo "$!"']
    output = subprocess.PIPE if detached else subprocess.DEVNULL
    launcher = subprocess.Popen(command, pass_fds=[write_end], stdout=output, stderr=subprocess.DEVNULL)
    os.close(write_end)
    if detached:
        pid = int(launcher.communicate(timeout=scaled(START_TIMEOUT_S))[0])  # the shell echoes Xvfb's pid and exits
    else:
        pid = launcher.pid
        XVFB_CHILDREN[pid] = launcher
    number = b""
    deadline = time.monotonic() + scaled(START_TIMEOUT_S)
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_end, 16) if ready else b""
            if not chunk:
                stop_xvfb(pid)
                raise RuntimeError(f"Xvfb did not report its display within {START_TIMEOUT_S} s")
            number += chunk
    finally:
        os.close(read_end)
    return pid, f":{number.decode().strip()}"


XVFB_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def stop_xvfb(pid: int) -> None:
    """Stop an Xvfb this test session started."""
    child = XVFB_CHILDREN.pop(pid, None)
    if child is not None:
        end(child)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def end(process: subprocess.Popen[Any]) -> None:
    """Terminate a helper process and reap it."""
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """A private X display whose system tray is trayer's; DISPLAY points at it for the session.

    Only trayer is stopped at the end: Xvfb ends by itself when this process, its last client, exits.
    """
    _, display = start_xvfb(detached=True)
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    trayer = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "28"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISPLAY", display)
        patch.setenv("QT_QPA_PLATFORM", "xcb")
        patch.delenv("WAYLAND_DISPLAY", raising=False)
        try:
            yield display
        finally:
            end(trayer)


@pytest.fixture(scope="session")
def qapp_args(x_display: str) -> list[str]:
    """pytest-qt builds its session QApplication after our display is up."""
    return ["noizylab-ui-tests"]


@pytest.fixture(scope="session")
def tray_app(qapp: QApplication) -> QApplication:
    """The QApplication, set up as ``noizylab`` sets it up, once trayer owns the tray selection."""
    app = application()
    assert app is qapp

    def tray_is_up() -> bool:
        app.processEvents()
        return QSystemTrayIcon.isSystemTrayAvailable()

    wait_for(tray_is_up, timeout=START_TIMEOUT_S, what="trayer to own the system tray selection")
    return app


@pytest.fixture
def run(tray_app: QApplication) -> Run:
    """Run a scenario on a fresh qasync loop over the tray's QApplication, closing the loop afterwards."""

    def run_scenario(scenario: Coroutine[Any, Any, T]) -> T:
        try:
            with runner(tray_app) as loop:
                return loop.run(scenario)
        finally:
            # The closed loop and the scenario's widgets go now, on this (the GUI) thread: see ui/gui_gc.py.
            gc.collect()

    return run_scenario


def node_settings(home: Path, name: str, **extra: Any) -> tuple[Paths, Settings]:
    """Paths and settings for a loopback-only node with free ports, as ``tests.conftest.write_config`` makes them."""
    write_config(home, name, **extra)
    paths = Paths.resolve(home)
    paths.ensure()
    return paths, load_settings(paths)
