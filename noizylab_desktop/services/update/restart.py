"""Applying a staged update: stop the node, swap the folders, start the new version, and roll back if it fails.

"Starts" means the new version's own node came up and said so: its update feature marks the install's trial as
over (``InstalledApp.confirm_started``) once every feature before it started. A start command that fails, or a node
that does not say so within ``CONFIRM_S``, puts the previous folder back and starts that one again where a node ran
before. Everything here runs the installed executables' own commands (``stop``, ``start``, or the tray itself
for an update the tray asked for), so the code that starts the new version is the new version's.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from noizylab_desktop.core.errors import UpdateError
from noizylab_desktop.services.update.install import InstalledApp

logger = logging.getLogger(__name__)

CONFIRM_S = 60.0  # how long a new version's node may take to come up
COMMAND_S = 90.0  # one `start` or `stop`

Relaunch = Literal["node", "tray"]  # what runs again afterwards: a background node (`start`) or the tray


@dataclass(frozen=True)
class Applied:
    """What an apply did."""

    old: str
    new: str
    running: bool  # a node of the new version runs now


def apply_staged(
    app: InstalledApp,
    cli_args: list[str],
    *,
    was_running: bool,
    say: Callable[[str], None],
    relaunch: Relaunch = "node",
    confirm_s: float = CONFIRM_S,
) -> Applied:
    """Swap the staged version in and prove it starts; roll back (and raise) when it does not."""
    if was_running:
        say(f"stopping the node of {app.build.app} {app.version}")
        stopped = _run(app, cli_args, "stop")
        if stopped.returncode != 0:  # nothing is swapped while the old node may still hold the folder
            raise UpdateError(f"could not stop the running node, so nothing was changed: {_last_line(stopped)}")
    old, new = app.swap_in()
    say(f"starting {app.build.app} {new}")
    why = _start_and_confirm(app, cli_args, new, relaunch, confirm_s)
    if why is None:
        if not was_running and relaunch == "node":
            _run(app, cli_args, "stop")
        return Applied(old, new, was_running or relaunch == "tray")
    logger.info("%s %s failed to start: %s; rolling back to %s", app.build.app, new, why, old)
    _run(app, cli_args, "stop")  # whatever part of it came up
    app.roll_back()
    if relaunch == "tray":
        _launch_tray(app, cli_args)
    elif was_running:
        _run(app, cli_args, "start")
    raise UpdateError(f"{app.build.app} {new} failed to start here ({why}): rolled back to {old}")


def roll_back_now(app: InstalledApp, cli_args: list[str], *, was_running: bool, say: Callable[[str], None]) -> Applied:
    """Put the kept previous version back in place of the running one, at the person's word."""
    if not app.previous_dir.is_dir():
        raise UpdateError(f"no previous version is kept beside {app.dir}: nothing to roll back to")
    if was_running:
        say(f"stopping the node of {app.build.app} {app.version}")
        stopped = _run(app, cli_args, "stop")
        if stopped.returncode != 0:
            raise UpdateError(f"could not stop the running node, so nothing was changed: {_last_line(stopped)}")
    left, restored = app.roll_back()
    if was_running:
        started = _run(app, cli_args, "start")
        if started.returncode != 0:
            raise UpdateError(f"{app.build.app} {restored} is back in place but did not start: {_last_line(started)}")
    return Applied(left, restored, was_running)


def _start_and_confirm(
    app: InstalledApp, cli_args: list[str], version: str, relaunch: Relaunch, confirm_s: float
) -> str | None:
    """None when ``version`` started and confirmed itself; else why not, in a few words."""
    tray: subprocess.Popen[bytes] | None = None
    if relaunch == "tray":
        tray = _launch_tray(app, cli_args)
    else:
        result = _run(app, cli_args, "start")
        if result.returncode != 0:
            return _last_line(result)
    deadline = time.monotonic() + confirm_s
    while time.monotonic() < deadline:
        if app.state().trial != version:
            return None
        if tray is not None and tray.poll() is not None:
            return f"the tray exited with status {tray.returncode}"
        time.sleep(0.1)  # another process's start-up offers nothing to wait on
    if tray is not None:
        tray.kill()
    return f"its node did not report a good start within {confirm_s:.0f} s"


def _launch_tray(app: InstalledApp, cli_args: list[str]) -> subprocess.Popen[bytes]:
    """The tray of the version in place now, in a session of its own (it outlives this command)."""
    kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    tray = app.dir / ("noizylab.exe" if sys.platform == "win32" else "noizylab")
    return subprocess.Popen([str(tray), *cli_args], **kwargs)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed command said last, without our prefix."""
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1].removeprefix("noizylab: error: ") if lines else f"it exited {result.returncode}"


def _run(app: InstalledApp, cli_args: list[str], command: str) -> subprocess.CompletedProcess[str]:
    """``APP/noizylab [--home H] COMMAND`` of the version in place now."""
    argv = [str(app.executable), *cli_args, command]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_S, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 1, "", f"noizylab: error: {command} could not run: {exc}")
    logger.info("%s %s: exit %s", app.executable, command, result.returncode)
    return result
