"""The PyInstaller build (packaging/noizylab.spec): the frozen `noizylab` is the whole app, keychain included.

The app is built once, exactly as `make dist` builds it (tests/frozen_build.py keeps it in ~/.cache/noizylab-tests/
for every test file and every run that drives it, until its inputs change), then driven like a user would:
`--version`, a foreground `node`, `start` (which re-runs the frozen binary itself), `status`, `stop`, and the
double-click case, no command at all: the tray, on an Xvfb display with trayer as the tray host.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop import __version__
from noizylab_desktop.services.dask.versions import NOT_IN_THIS_BUILD
from tests.conftest import wait_for, write_config
from tests.frozen_build import BUILD_TIMEOUT_S, frozen_app
from tests.slowness import scaled

# The first test's own limit covers the build (pytest-timeout counts fixture set-up), hence the marker.
UP_TIMEOUT_S = 60.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]


@pytest.fixture(scope="module")
def frozen() -> Path:
    """The frozen `noizylab` binary, built from the spec as `make dist` builds it (once for all test files)."""
    binary = frozen_app() / ("noizylab.exe" if sys.platform == "win32" else "noizylab")
    assert binary.is_file()
    return binary


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb on a free display number (it writes the number it picked to a pipe) and that display's name."""
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=[write_end],
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + scaled(10)
    with open(read_end, "rb", buffering=0) as pipe:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            chunk = pipe.read(16) if ready else b""
            if not chunk:
                xvfb.kill()
                xvfb.wait()
                raise AssertionError("Xvfb did not report its display within 10 s")
            number += chunk
    return xvfb, f":{number.decode().strip()}"


def end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def tray_display() -> Iterator[dict[str, str]]:
    """An environment whose DISPLAY is a private Xvfb with trayer as its system tray."""
    xvfb, display = start_xvfb()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = display
    trayer = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "28"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield env
    end(trayer)
    end(xvfb)


def noizylab(binary: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=scaled(timeout))


def status(binary: Path, home: Path) -> dict[str, Any]:
    """`status --json` from the frozen binary (``running`` is false until the node answers)."""
    result = noizylab(binary, "--home", str(home), "status", "--json")
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {"running": False, "output": result.stdout + result.stderr}
    return dict(data)


def running_with_grpc_port(binary: Path, home: Path) -> dict[str, Any] | None:
    data = status(binary, home)
    return data if data.get("running") and data["ports"]["grpc"] else None


@pytest.fixture
def node_home(tmp_path: Path, frozen: Path) -> Iterator[Path]:
    """A loopback node home with free ports; its node is stopped afterwards whatever happened."""
    home = tmp_path / "frozen-node"
    write_config(home, "frozen")
    yield home
    noizylab(frozen, "--home", str(home), "stop")


def test_the_frozen_app_prints_its_version(frozen: Path) -> None:
    result = noizylab(frozen, "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"noizylab {__version__}"


def test_the_frozen_app_carries_its_icon_and_the_keychain_backends(frozen: Path) -> None:
    internal = frozen.parent / "_internal"

    assert (internal / "noizylab_desktop" / "resources" / "noizylab.svg").is_file()
    assert (internal / "noizylab_desktop" / "resources" / "noizylab.desktop").is_file()
    entry_points = next(internal.glob("keyring-*.dist-info")) / "entry_points.txt"
    assert "keyring.backends.SecretService" in entry_points.read_text()


def test_the_frozen_node_comes_up_in_the_foreground_answers_status_and_stops(frozen: Path, node_home: Path) -> None:
    log = node_home / "foreground.log"
    with open(log, "wb") as out:
        node = subprocess.Popen(
            [str(frozen), "--home", str(node_home), "node"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Reap the node as soon as it exits, as a shell would: `stop` waits for its pid to vanish, and an unreaped
    # child stays as a zombie until its parent waits for it.
    threading.Thread(target=node.wait, daemon=True).start()
    try:

        def up() -> dict[str, Any] | None:
            if node.poll() is not None:
                raise AssertionError(f"the frozen node exited {node.returncode}:\n{log.read_text()}")
            return running_with_grpc_port(frozen, node_home)

        data = wait_for(up, timeout=UP_TIMEOUT_S, what="the frozen node to answer `status --json`")
        assert data["name"] == "frozen" and data["pid"] == node.pid

        stopped = noizylab(frozen, "--home", str(node_home), "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert node.wait(30) == 0, log.read_text()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()


def test_the_frozen_start_runs_the_frozen_node_in_the_background(frozen: Path, node_home: Path) -> None:
    started = noizylab(frozen, "--home", str(node_home), "start")
    assert started.returncode == 0, started.stderr + started.stdout

    data = wait_for(lambda: running_with_grpc_port(frozen, node_home), timeout=UP_TIMEOUT_S, what="status")
    runtime = json.loads((node_home / "state" / "runtime.json").read_text())
    assert runtime["pid"] == data["pid"] and runtime["grpc_port"] == data["ports"]["grpc"]

    stopped = noizylab(frozen, "--home", str(node_home), "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert running_with_grpc_port(frozen, node_home) is None


def test_the_frozen_app_says_in_one_line_that_dask_is_not_in_this_build(frozen: Path, node_home: Path) -> None:
    started = noizylab(frozen, "--home", str(node_home), "start")
    assert started.returncode == 0, started.stderr + started.stdout

    refused = noizylab(frozen, "--home", str(node_home), "dask", "up")

    assert (refused.returncode, refused.stderr) == (1, f"noizylab: error: {NOT_IN_THIS_BUILD}\n"), refused.stderr
    assert running_with_grpc_port(frozen, node_home) is not None  # the node is fine


def test_the_frozen_app_with_no_command_is_the_tray_hosting_the_node(
    frozen: Path, node_home: Path, tray_display: dict[str, str]
) -> None:
    log = node_home / "tray.log"
    with open(log, "wb") as out:
        tray = subprocess.Popen(
            [str(frozen), "--home", str(node_home)],
            env=tray_display,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    threading.Thread(target=tray.wait, daemon=True).start()
    try:

        def up() -> dict[str, Any] | None:
            if tray.poll() is not None:
                raise AssertionError(f"the frozen tray exited {tray.returncode}:\n{log.read_text()}")
            return running_with_grpc_port(frozen, node_home)

        data = wait_for(up, timeout=UP_TIMEOUT_S, what="the frozen tray's node to answer `status --json`")
        assert data["pid"] == tray.pid, "the tray process itself hosts the node"

        stopped = noizylab(frozen, "--home", str(node_home), "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert tray.wait(30) == 0, log.read_text()
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
