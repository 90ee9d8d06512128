"""Start at login on a Linux desktop, for real: ``noizylab autostart on`` writes the XDG autostart entry, GLib's own
launcher (``gio launch``, what GNOME's session starts autostart entries with) starts the tray of this home from it,
``off`` removes it; the tray's ``Start at login`` switch shows the state the file has and changes it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.node.autostart import entry_name
from noizylab_desktop.node.autostart.xdg import read_entry
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from tests.conftest import NodeProcess, wait_for
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import action, open_menu
from tests.ui.waiting import Run, eventually

START_TIMEOUT_S = 30.0


@pytest.fixture
def xdg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of this test's own: no test writes the machine's real autostart folder."""
    folder = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


def test_the_autostart_entry_starts_the_tray_of_this_home_and_goes_away_when_turned_off(
    x_display: str, xdg_config: Path, make_node: Callable[..., NodeProcess]
) -> None:
    # A folder name the Exec line must quote and escape: a space and a percent sign (field codes start with %).
    desk = make_node("desk", home="grid node 100%")
    entry = xdg_config / "autostart" / f"{entry_name(Paths.resolve(desk.home))}.desktop"
    assert json.loads(desk.cli("autostart", "status", "--json").stdout)["state"] == "off"

    shown = json.loads(desk.cli("autostart", "on", "--json").stdout)
    assert shown["state"] == "on" and shown["where"] == str(entry)
    keys = read_entry(entry.read_text())
    assert keys["TryExec"] == sys.executable and os.access(keys["TryExec"], os.X_OK)
    assert keys["Exec"].endswith(f'--home "{desk.home}"'.replace("%", "%%"))

    # The tray outlives gio and keeps what it inherited open: its output goes to a file, not to a pipe read here.
    with open(desk.home.parent / "gio-launch.log", "wb") as said:
        launched = subprocess.run(["gio", "launch", str(entry)], stdout=said, stderr=said, timeout=30)
    assert launched.returncode == 0, (desk.home.parent / "gio-launch.log").read_text()
    runtime = desk.home / "state" / "runtime.json"
    try:
        status = wait_for(lambda: runtime.exists() and desk.status(), START_TIMEOUT_S, "the tray started at login")
        assert status["name"] == "desk"
        tray = psutil.Process(status["pid"])
        assert tray.cmdline()[-2:] == ["--home", str(desk.home)]  # the tray: no command after the home
    finally:
        pid = json.loads(runtime.read_text())["pid"] if runtime.exists() else None
        desk.stop()
        if pid is not None:  # started through gio for this test: make sure it is gone
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).wait(15)

    assert desk.cli("autostart", "off").stdout.strip() == f"start at login: off ({entry})"
    assert not entry.exists()


def test_the_tray_switch_shows_the_real_state_and_changes_it(run: Run, tmp_path: Path, xdg_config: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    entry = xdg_config / "autostart" / f"{entry_name(paths)}.desktop"

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            switch = action(app.tray, "Start at login")
            assert switch.isCheckable() and not switch.isChecked()

            # Turned on elsewhere (the command line, an installer): the switch shows it the next time the menu opens.
            subprocess.run(
                [sys.executable, "-m", "noizylab_desktop", "--home", str(paths.home), "autostart", "on"],
                check=True,
                capture_output=True,
            )
            assert action(app.tray, "Start at login").isChecked()
            app.tray.menu.popup(app.tray.icon.geometry().bottomLeft())
            await eventually(app.tray.menu.isVisible, 5, "the menu to show")
            keep(app.tray.menu, "tray-menu-start-at-login")
            app.tray.menu.hide()

            action(app.tray, "Start at login").trigger()  # unticks it
            assert not entry.exists()
            assert not action(app.tray, "Start at login").isChecked()
            action(app.tray, "Start at login").trigger()
            assert entry.exists() and any(r.text == "Start at login" for r in await open_menu(app.tray))

    run(scenario())
