"""Start at login, per OS, behind one interface: the XDG entry's text, the Windows ``Run`` value's logic and the
macOS plist and SMAppService states (the real Linux desktop run is in tests/ui/test_autostart.py, the real registry
under Wine in tests/windows/test_autostart.py)."""

from __future__ import annotations

import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.errors import LauncherError
from noizylab_desktop.node.autostart import entry_name, for_platform, refresh, tray_command
from noizylab_desktop.node.autostart.macos import (
    ENABLED,
    NOT_REGISTERED,
    REQUIRES_APPROVAL,
    LaunchAgentAutostart,
    LoginItemAutostart,
    macos_autostart,
)
from noizylab_desktop.node.autostart.windows import APPROVED, RUN, RunKeyAutostart, command_line
from noizylab_desktop.node.autostart.xdg import XdgAutostart, exec_line, read_entry

BUNDLE = ["/Applications/NOIZYLAB.app/Contents/MacOS/noizylab"]


def unexec(value: str) -> list[str]:
    """``Exec``'s argv as the Desktop Entry specification reads it: the string escapes first, then the quoting, which
    the specification takes from the shell (inside double quotes a backslash escapes ``"``, `````, ``$`` and ``\\``),
    so a real ``sh`` reads it here; then ``%%`` is one ``%``."""
    unescaped = value.replace("\\\\", "\x00").replace("\\s", " ").replace("\x00", "\\")
    printed = subprocess.run(["sh", "-c", f"printf '%s\\0' {unescaped}"], capture_output=True, check=True).stdout
    return [arg.replace("%%", "%") for arg in printed.decode().split("\0")[:-1]]


def test_each_home_has_its_own_entry_that_starts_its_tray(tmp_path: Path) -> None:
    home, other = Paths.resolve(tmp_path / "a"), Paths.resolve(tmp_path / "b")
    assert entry_name(Paths(tmp_path / "config", tmp_path / "state", tmp_path / "logs")) == "noizylab"
    assert entry_name(home) != entry_name(other) and entry_name(home).startswith("noizylab-")
    assert tray_command(home) == [sys.executable, "-m", "noizylab_desktop", "--home", str(tmp_path / "a")]


@pytest.mark.parametrize(
    ("frozen", "running", "beside", "starts"),
    [
        (True, "noizylab-cli.exe", "noizylab.exe", ["noizylab.exe"]),
        (True, "noizylab.exe", "", ["noizylab.exe"]),
        (False, "python.exe", "pythonw.exe", ["pythonw.exe", "-m", "noizylab_desktop"]),
        (False, "python.exe", "", ["python.exe", "-m", "noizylab_desktop"]),
    ],
)
def test_on_windows_login_starts_the_windowed_program_so_no_console_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frozen: bool, running: str, beside: str, starts: list[str]
) -> None:
    for name in {running, beside} - {""}:
        (tmp_path / name).touch()
    monkeypatch.setattr(sys, "executable", str(tmp_path / running))
    monkeypatch.setattr(sys, "frozen", frozen, raising=False)
    command = tray_command(Paths(tmp_path / "c", tmp_path / "s", tmp_path / "l"), "win32")
    assert command == [str(tmp_path / starts[0]), *starts[1:]]


@pytest.mark.parametrize(
    "home", ["/tmp/plain", "/tmp/with space", "/tmp/100% sure", '/tmp/quote"d', "/tmp/back\\slash", "/tmp/$HOME`x`"]
)
def test_the_exec_line_reads_back_as_the_same_command_whatever_the_folder_is_called(home: str) -> None:
    command = [sys.executable, "-m", "noizylab_desktop", "--home", home]
    assert unexec(exec_line(command)) == command


def test_the_xdg_entry_is_a_valid_autostart_file_and_comes_and_goes(tmp_path: Path) -> None:
    command = ["/opt/noizylab/noizylab", "--home", "/srv/grid node"]
    entry = XdgAutostart("noizylab-test", command, tmp_path)
    assert entry.status().state == "off"

    assert entry.enable().state == "on"
    keys = read_entry(entry.path.read_text())
    assert keys == {
        "Type": "Application",
        "Name": "NOIZYLAB",
        "Comment": "Join your computers into one private grid (started at login)",
        "Exec": '/opt/noizylab/noizylab --home "/srv/grid node"',
        "TryExec": "/opt/noizylab/noizylab",
        "Icon": "noizylab",
        "Terminal": "false",
        "X-GNOME-Autostart-enabled": "true",
        "X-GNOME-Autostart-Delay": "2",
        "X-KDE-autostart-after": "panel",
    }
    assert entry.path.read_text().startswith("[Desktop Entry]\n")
    checked = subprocess.run(["desktop-file-validate", str(entry.path)], capture_output=True, text=True)
    assert (checked.returncode, checked.stdout) == (0, ""), "desktop-file-utils finds fault with the entry"

    assert entry.disable().state == "off" and not entry.path.exists()
    assert entry.disable().state == "off"  # off again is not an error


def test_an_entry_switched_off_by_the_desktop_or_left_by_a_moved_app_says_so(tmp_path: Path) -> None:
    entry = XdgAutostart("noizylab-test", ["/new/place/noizylab"], tmp_path)
    entry.enable()
    entry.path.write_text(entry.path.read_text().replace("X-GNOME-Autostart-enabled=true", "Hidden=true"))
    assert entry.status().state == "off" and "switched off" in entry.status().hint

    moved = XdgAutostart("noizylab-test", ["/old/place/noizylab"], tmp_path)
    moved.enable()
    stale = entry.status()
    assert stale.state == "stale" and not stale.on and "`noizylab autostart on`" in stale.hint
    assert refresh(entry).state == "on"  # the tray does this at start
    assert read_entry(entry.path.read_text())["Exec"] == "/new/place/noizylab"


class Registry:
    """HKEY_CURRENT_USER as a dict (the real one is tested under Wine with `reg query`)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str | bytes] = {}

    def get(self, key: str, name: str) -> str | bytes | None:
        return self.values.get((key, name))

    def set_string(self, key: str, name: str, value: str) -> None:
        self.values[(key, name)] = value

    def delete(self, key: str, name: str) -> None:
        self.values.pop((key, name), None)


def test_windows_run_value_holds_the_command_line_and_task_managers_switch_is_honoured() -> None:
    registry = Registry()
    command = ["C:\\Program Files\\NOIZYLAB\\noizylab.exe", "--home", "C:\\Users\\me\\grid node"]
    run = RunKeyAutostart("noizylab-test", command, registry)
    assert run.status().state == "off"
    assert run.where == r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\noizylab-test"

    assert run.enable().state == "on"
    assert registry.values[(RUN, "noizylab-test")] == (
        '"C:\\Program Files\\NOIZYLAB\\noizylab.exe" --home "C:\\Users\\me\\grid node"'
    )
    registry.values[(APPROVED, "noizylab-test")] = bytes([3]) + bytes(11)  # Task Manager: Disabled
    assert run.status().state == "disabled" and not run.status().on
    assert run.enable().state == "on" and (APPROVED, "noizylab-test") not in registry.values

    registry.values[(RUN, "noizylab-test")] = command_line(["C:\\old\\noizylab.exe"])
    assert run.status().state == "stale"
    assert run.disable().state == "off" and registry.values == {}


def test_macos_13_registers_the_app_bundle_and_shows_when_it_waits_for_approval() -> None:
    class LoginItem:
        def __init__(self) -> None:
            self.code = NOT_REGISTERED
            self.calls: list[str] = []

        def status(self) -> int:
            return self.code

        def register(self) -> None:
            self.calls.append("register")
            self.code = REQUIRES_APPROVAL  # macOS holds new login items until the person allows them

        def unregister(self) -> None:
            self.calls.append("unregister")
            self.code = NOT_REGISTERED

    api = LoginItem()
    chosen = macos_autostart("noizylab", BUNDLE, api, version="14.5")
    assert isinstance(chosen, LoginItemAutostart)
    assert chosen.status().state == "off"
    waiting = chosen.enable()
    assert waiting.state == "needs approval" and waiting.on
    assert waiting.line() == (
        "start at login: needs approval (System Settings → General → Login Items (SMAppService)): "
        "allow NOIZYLAB in System Settings → General → Login Items"
    )
    assert chosen.enable().state == "needs approval" and api.calls == ["register"]  # not registered twice
    api.code = ENABLED  # the person allowed it
    assert chosen.status().state == "on"
    assert chosen.disable().state == "off" and api.calls == ["register", "unregister"]


@pytest.mark.parametrize(
    ("version", "command", "why"),
    [
        ("12.7", BUNDLE, "macOS 12 has no SMAppService"),
        ("14.5", ["/usr/bin/python3", "-m", "noizylab_desktop"], "not a frozen app bundle"),
        ("14.5", [*BUNDLE, "--home", "/Users/me/grid"], "a --home node needs its arguments"),
    ],
)
def test_macos_falls_back_to_a_launch_agent(version: str, command: list[str], why: str) -> None:
    assert isinstance(macos_autostart("noizylab", command, None, version), LaunchAgentAutostart), why


def test_the_launch_agent_plist_is_valid_and_runs_the_tray_at_login(tmp_path: Path) -> None:
    command = ["/usr/local/bin/python3", "-m", "noizylab_desktop", "--home", "/Users/me/grid node"]
    agent = LaunchAgentAutostart("com.noizylab.desktop.1234abcd", command, tmp_path)
    assert agent.enable().state == "on"
    assert agent.path == tmp_path / "com.noizylab.desktop.1234abcd.plist"
    raw = agent.path.read_bytes()
    assert raw.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"'
    )
    data = plistlib.loads(raw, fmt=plistlib.FMT_XML)
    assert data == {
        "Label": "com.noizylab.desktop.1234abcd",
        "ProgramArguments": command,
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
    }
    # launchd.plist(5)'s types: a string label, an array of strings, booleans.
    assert isinstance(data["Label"], str) and all(isinstance(a, str) for a in data["ProgramArguments"])
    assert agent.disable().state == "off" and not agent.path.exists()


def test_the_backend_is_chosen_by_platform_behind_one_interface(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    paths = Paths.resolve(tmp_path / "grid")
    linux = for_platform(paths, "linux")
    assert isinstance(linux, XdgAutostart) and linux.path.parent == tmp_path / "xdg" / "autostart"
    mac = for_platform(paths, "darwin")
    assert isinstance(mac, LaunchAgentAutostart)
    assert mac.path.parent == tmp_path / "me" / "Library" / "LaunchAgents"
    assert isinstance(for_platform(paths, "freebsd14"), XdgAutostart)
    # The Run key backend reaches the real registry only on Windows: elsewhere one line, not a crash.
    with pytest.raises(LauncherError, match="only on Windows"):
        for_platform(paths, "win32")
