"""The Windows installer (packaging/windows/noizylab.nsi) under Wine: install, upgrade, the installed app, uninstall.

The installers are built by scripts/windows-tier.sh when WINDOWS_INSTALLER=1: the frozen Windows app (PyInstaller
run on this Windows CPython under Wine), then two installers of it made with makensis on the Linux side, an older
version (0.0.1) and this one, in the folder NOIZYLAB_INSTALLERS names. Without them this file is skipped in one line.

The tests are one story and run in order, as a person would live it: install the old version, install this one
over it, use the installed app, uninstall keeping the data, reinstall, uninstall removing the data. What the
firewall option does is not checked here: Wine's netsh has no `advfirewall`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop import __version__
from tests.conftest import wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

INSTALLERS = Path(os.environ.get("NOIZYLAB_INSTALLERS", "")) if os.environ.get("NOIZYLAB_INSTALLERS") else None
LOCAL = Path(os.environ.get("LOCALAPPDATA", "C:/nowhere"))
INSTDIR = LOCAL / "Programs" / "NOIZYLAB"
DATA = LOCAL / "noizylab"  # platformdirs' config and state folder for the app, on Windows
SHORTCUT = Path(os.environ.get("APPDATA", "C:/nowhere")) / "Microsoft/Windows/Start Menu/Programs/NOIZYLAB Desktop.lnk"
UNINSTALL_KEY = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\NOIZYLAB"
OLD = "0.0.1"

if INSTALLERS is None:
    pytest.skip(
        "no installers to test: scripts/windows-tier.sh builds them with WINDOWS_INSTALLER=1", allow_module_level=True
    )


def installer(version: str) -> Path:
    path = INSTALLERS / f"NOIZYLAB-{version}-setup.exe"  # type: ignore[operator]
    assert path.is_file(), f"{path} was not built"
    return path


def run(*command: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout)


def registered(name: str) -> str | None:
    """A value of the app's Apps & features entry (``reg query``), or None when the entry or value is absent."""
    result = run("reg", "query", UNINSTALL_KEY, "/v", name)
    if result.returncode != 0:
        return None
    line = next((line for line in result.stdout.splitlines() if line.strip().startswith(name)), "")
    parts = line.split(None, 2)  # "    DisplayVersion    REG_SZ    0.1.0"
    return parts[2].strip() if len(parts) == 3 else None


def keeps(found: Any, wanted: Any) -> bool:
    """Whether ``found`` holds every value of ``wanted`` (tables compared key by key; more keys are fine)."""
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(keeps(found.get(key), value) for key, value in wanted.items())
    return bool(found == wanted)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run(INSTDIR / "noizylab-cli.exe", *args, timeout=120)


def uninstall(*options: str) -> None:
    """The uninstaller, silent; it copies itself elsewhere and returns at once, so wait for the folder to go (its
    last step, after the data's)."""
    result = run(INSTDIR / "uninstall.exe", "/S", *options)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: not INSTDIR.exists(), timeout=120, what=f"the uninstaller to remove {INSTDIR}")


def test_a_silent_install_puts_the_app_a_start_menu_entry_and_an_apps_entry_in_place() -> None:
    result = run(installer(OLD), "/S")

    assert result.returncode == 0, result.stderr
    assert (INSTDIR / "noizylab.exe").is_file() and (INSTDIR / "noizylab-cli.exe").is_file()
    assert (INSTDIR / "uninstall.exe").is_file()
    assert SHORTCUT.is_file()
    assert registered("DisplayVersion") == OLD
    assert (registered("QuietUninstallString") or "").lower().endswith('\\uninstall.exe" /s')


def test_installing_this_version_over_the_old_one_replaces_the_app_and_keeps_the_users_data() -> None:
    stale = INSTDIR / "_internal" / "only-in-the-old-version.dll"
    stale.write_bytes(b"old")
    write_config(DATA, "installed")  # the user's config, with free loopback ports for the next test
    config = tomllib.loads((DATA / "config.toml").read_text())

    result = run(installer(__version__), "/S")

    assert result.returncode == 0, result.stderr
    assert not stale.exists(), "a file of the old version stayed behind"
    assert registered("DisplayVersion") == __version__
    # The old version's `stop` (run by the installer) may add its defaults to the file; the user's values stay.
    kept = tomllib.loads((DATA / "config.toml").read_text())
    assert keeps(kept, config), kept


def test_the_installed_app_starts_a_node_that_answers_status() -> None:
    assert cli("--version").stdout.strip() == f"noizylab {__version__}"

    started = cli("start")
    assert started.returncode == 0, started.stderr + started.stdout
    try:

        def answering() -> dict[str, Any] | None:
            result = cli("status", "--json")
            data = json.loads(result.stdout) if result.returncode == 0 and result.stdout.strip() else {}
            return data if data.get("running") else None

        status = wait_for(answering, timeout=60, what="the installed node to answer `status --json`")
        assert status["name"] == "installed" and status["ports"]["grpc"] > 0
    finally:
        assert cli("stop").returncode == 0


def test_uninstalling_removes_the_app_and_its_entries_and_keeps_the_users_data() -> None:
    uninstall()

    assert not SHORTCUT.exists()
    assert registered("DisplayName") is None
    assert (DATA / "config.toml").is_file()


def test_uninstalling_with_removedata_removes_the_users_data_too() -> None:
    assert run(installer(__version__), "/S").returncode == 0

    uninstall("/REMOVEDATA")

    assert not DATA.exists()
