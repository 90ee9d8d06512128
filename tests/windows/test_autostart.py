"""Start at login on Windows: ``noizylab autostart on`` writes the HKCU ``Run`` value that ``reg query`` shows, as a
command line that Windows splits back into the command starting the tray of this home; Task Manager's switch
(``StartupApproved``) reads as ``disabled`` and ``on`` clears it; ``off`` removes the value."""

from __future__ import annotations

import ctypes
import re
import subprocess
from collections.abc import Callable, Iterator

import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.node.autostart import entry_name, tray_command
from tests.conftest import NodeProcess

RUN = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
VALUE_LINE = re.compile(r"^\s+(?P<name>\S+)\s+(?P<kind>REG_\w+)\s+(?P<value>.*?)\s*$")


def reg_query(key: str, name: str) -> tuple[str, str] | None:
    """``reg query KEY /v NAME``: the value's type and data as reg.exe prints them, or None when it is not there."""
    done = subprocess.run(["reg", "query", key, "/v", name], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    for line in done.stdout.splitlines():
        found = VALUE_LINE.match(line)
        if found and found["name"].lower() == name.lower():
            return found["kind"], found["value"]
    raise AssertionError(f"reg query printed no line for {name}: {done.stdout!r}")


def argv_of(command_line: str) -> list[str]:
    """How Windows splits a command line (``CommandLineToArgvW``, what a started program's C runtime does)."""
    shell32 = ctypes.WinDLL("shell32")
    kernel32 = ctypes.WinDLL("kernel32")
    shell32.CommandLineToArgvW.restype = ctypes.POINTER(ctypes.c_wchar_p)
    count = ctypes.c_int()
    argv = shell32.CommandLineToArgvW(ctypes.c_wchar_p(command_line), ctypes.byref(count))
    try:
        return [argv[i] for i in range(count.value)]
    finally:
        kernel32.LocalFree(argv)


@pytest.fixture
def desk(make_node: Callable[..., NodeProcess]) -> Iterator[NodeProcess]:
    """A home whose autostart value is removed afterwards, whatever happened (the Wine prefix is shared)."""
    node = make_node("desk", home="grid node")  # a folder name with a space: the command line must quote it
    try:
        yield node
    finally:
        node.cli("autostart", "off", check=False)


def test_autostart_writes_the_run_value_that_starts_this_homes_tray_and_off_removes_it(desk: NodeProcess) -> None:
    name = entry_name(Paths.resolve(desk.home))
    assert desk.json("autostart", "status")["state"] == "off" and reg_query(RUN, name) is None

    shown = desk.json("autostart", "on")
    assert shown["state"] == "on" and shown["where"] == rf"{RUN}\{name}"
    found = reg_query(RUN, name)
    assert found is not None
    kind, value = found
    assert kind == "REG_SZ"
    command = tray_command(Paths.resolve(desk.home))
    assert argv_of(value) == command == shown["command"]
    assert command[0].lower().endswith("pythonw.exe")  # no console window at login
    assert command[-2:] == ["--home", str(desk.home)]

    assert desk.cli("autostart", "off").stdout.strip() == rf"start at login: off ({RUN}\{name})"
    assert reg_query(RUN, name) is None


def test_task_managers_switch_reads_as_disabled_and_on_clears_it(desk: NodeProcess) -> None:
    name = entry_name(Paths.resolve(desk.home))
    desk.cli("autostart", "on")
    # What Task Manager writes when its person disables a startup app: 03 then a timestamp.
    subprocess.run(
        ["reg", "add", APPROVED, "/v", name, "/t", "REG_BINARY", "/d", "03" + "00" * 11, "/f"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    status = desk.json("autostart", "status")
    assert status["state"] == "disabled" and status["on"] is False and "Task Manager" in status["hint"]

    assert desk.json("autostart", "on")["state"] == "on"
    assert reg_query(APPROVED, name) is None and reg_query(RUN, name) is not None
