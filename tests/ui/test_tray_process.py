"""``noizylab`` with no command, as a real process: it refuses without a display or a tray, and is the home's node."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.node.launcher import pid_alive
from tests.conftest import NOIZYLAB, NodeProcess, wait_for, write_config
from tests.integration.tasks_helpers import pair
from tests.ui.conftest import start_xvfb, stop_xvfb

START_TIMEOUT_S = 30.0
HINT = "run the headless node with `noizylab node` instead"


def environment(**display: str) -> dict[str, str]:
    """This environment with only the given display variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return {**env, **display}


def run_tray(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOIZYLAB, "--home", str(home)], env=env, capture_output=True, text=True, timeout=60)


def test_without_a_display_noizylab_says_so_in_one_line_and_points_to_the_headless_node(tmp_path: Path) -> None:
    write_config(tmp_path / "desk", "desk")

    result = run_tray(tmp_path / "desk", environment())

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"noizylab: error: no display here (neither DISPLAY nor WAYLAND_DISPLAY is set): {HINT}"
    ]
    assert not (tmp_path / "desk" / "state" / "runtime.json").exists()


def test_a_display_that_does_not_answer_gets_one_line_not_a_qt_abort(tmp_path: Path) -> None:
    write_config(tmp_path / "desk", "desk")
    unused = ":4077"  # no X server listens there (nothing in this suite starts one on a fixed number)
    assert not Path(f"/tmp/.X11-unix/X{unused[1:]}").exists()

    result = run_tray(tmp_path / "desk", environment(DISPLAY=unused, QT_QPA_PLATFORM="xcb"))

    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"noizylab: error: cannot open the display '{unused}': ") and line.endswith(HINT), line
    assert not (tmp_path / "desk" / "state" / "runtime.json").exists()


@pytest.fixture
def display_without_tray() -> Iterator[str]:
    """An X display where nothing hosts a system tray."""
    pid, display = start_xvfb(detached=False)
    yield display
    stop_xvfb(pid)


def test_on_a_display_without_a_system_tray_noizylab_points_to_the_headless_node(
    tmp_path: Path, display_without_tray: str
) -> None:
    write_config(tmp_path / "desk", "desk")

    result = run_tray(tmp_path / "desk", environment(DISPLAY=display_without_tray, QT_QPA_PLATFORM="xcb"))

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1:] == [f"noizylab: error: this desktop shows no system tray: {HINT}"]
    assert "Traceback" not in result.stderr


@contextlib.contextmanager
def running_tray(desk: NodeProcess, x_display: str) -> Iterator[Any]:
    """``noizylab`` running for the home of ``desk`` on the tray display, up once its runtime file names it."""
    tray = subprocess.Popen(
        [*NOIZYLAB, "--home", str(desk.home)],
        env=environment(DISPLAY=x_display, QT_QPA_PLATFORM="xcb"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runtime = desk.home / "state" / "runtime.json"

    def up() -> bool:
        assert tray.poll() is None, f"the tray exited at start: {tray.communicate()[1].strip()}"
        return runtime.exists() and json.loads(runtime.read_text())["pid"] == tray.pid

    try:
        wait_for(up, timeout=START_TIMEOUT_S, what="the tray's node to write its runtime file")
        yield tray
    finally:
        if tray.poll() is None:
            tray.kill()
        tray.communicate()


@pytest.fixture
def tray_process(x_display: str, make_node: Callable[[str], NodeProcess]) -> Iterator[tuple[NodeProcess, Any]]:
    """``noizylab`` running for the home of ``desk`` on the tray display."""
    desk = make_node("desk")
    with running_tray(desk, x_display) as tray:
        yield desk, tray


def _log(desk: NodeProcess) -> str:
    return Paths.resolve(desk.home).log_file.read_text()


def test_the_tray_is_this_homes_node_for_status_and_stop(tray_process: tuple[NodeProcess, Any]) -> None:
    desk, tray = tray_process
    state = desk.home / "state"

    status = desk.status()
    assert status["name"] == "desk" and status["pid"] == tray.pid and status["ports"]["grpc"] > 0
    assert (state / "node.pid").read_text() == str(tray.pid)

    second = desk.cli("node", check=False)
    assert second.returncode == 1 and "a node is already running" in second.stderr

    stop = subprocess.Popen([*NOIZYLAB, "--home", str(desk.home), "stop"], stdout=subprocess.PIPE, text=True)
    # The tray is this test's child: reap it at once, or `stop` would see a zombie and wait for it to go.
    assert tray.wait(15) == 0
    assert stop.communicate(timeout=30)[0].startswith("node stopped")
    assert not (state / "node.pid").exists() and not (state / "runtime.json").exists()
    said = tray.communicate()[1]
    assert "Traceback" not in said
    # The person did not pick Quit: the tray says why it went.
    assert "noizylab: quitting: `noizylab stop` was run" in said.splitlines()
    assert "quitting: `noizylab stop` was run" in _log(desk)


def test_the_tray_takes_over_a_node_started_in_the_background(
    x_display: str, make_node: Callable[[str], NodeProcess]
) -> None:
    desk = make_node("desk").start()
    background = desk.pid

    with running_tray(desk, x_display) as tray:
        wait_for(lambda: not pid_alive(background), what="the background node to stop")
        assert desk.status()["pid"] == tray.pid
        log = _log(desk)
        assert "stopping: a tray started for this home takes the node over" in log
        assert f"the node that ran in the background (pid {background}) stopped: this tray runs it now" in log


def test_the_tray_stops_cleanly_on_sigterm(tray_process: tuple[NodeProcess, Any]) -> None:
    desk, tray = tray_process

    tray.send_signal(signal.SIGTERM)

    assert tray.wait(15) == 0
    assert not (desk.home / "state" / "runtime.json").exists()


def test_a_key_rotation_restarts_the_trays_node_on_its_new_key(
    tray_process: tuple[NodeProcess, Any], make_node: Callable[[str], NodeProcess]
) -> None:
    desk, tray = tray_process
    beta = make_node("beta").start()
    pair(desk, beta)
    beta.cli("allow", "desk", "tasks")
    old_id = desk.id

    rotated = desk.json("keys", "rotate", "identity")

    assert rotated["old_id"] == old_id != rotated["id"] and rotated["told"] == ["beta"]
    # The same process hosts the node on its new key, on the same port; the peer followed without re-pairing.
    wait_for(lambda: desk.id == rotated["id"], what="the tray's node to run on its new key")
    assert desk.status()["pid"] == tray.pid and tray.poll() is None
    wait_for(lambda: (beta.peer("desk") or {}).get("id") == rotated["id"], what="beta to follow desk's new key")
    wait_for(lambda: (desk.peer("beta") or {}).get("online"), what="the restarted node to see beta online")
    assert desk.cli("run", "--on", "beta", "--", "echo", "after").stdout.strip() == "after"
    assert "this machine's node restarted: its identity key was rotated" in _log(desk)
    # Its tray is whole: Quit's path (`noizylab stop`) still ends the process cleanly.
    stop = subprocess.Popen([*NOIZYLAB, "--home", str(desk.home), "stop"], stdout=subprocess.PIPE, text=True)
    assert tray.wait(15) == 0
    assert stop.communicate(timeout=30)[0].startswith("node stopped")
    assert "Traceback" not in tray.communicate()[1]
