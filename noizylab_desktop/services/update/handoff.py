"""Applying an update from outside the app folder, for Windows: the folder of a running program cannot be renamed.

``noizylab update apply`` runs from the app folder it is to replace. Where that folder cannot be moved while a
program runs from it, the command verifies and unpacks the new version as everywhere, then copies the version that
runs now to ``noizylab.update/runner/`` and starts that copy, detached, as ``update finish``: the copy waits for the
command (and any tray that asked for the update) to exit, then stops the node, swaps the folders, starts the new
version and rolls back if it does not start, exactly as ``restart.apply_staged`` does in place. What it says goes to
``noizylab.update/apply.log``; the outcome is in ``noizylab update status`` as after any apply.

The runner is the old version's code, as an in-place apply is: the new version is trusted to start, not to swap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from noizylab_desktop.core.errors import UpdateError
from noizylab_desktop.services.update.install import InstalledApp
from noizylab_desktop.services.update.restart import Relaunch

RUNNER = "runner"
LOG = "apply.log"
EXIT_WAIT_S = 120.0  # how long the runner waits for the command that started it to exit


def hand_off(app: InstalledApp, cli_args: list[str], *, action: str, was_running: bool, relaunch: Relaunch) -> Path:
    """Start a copy of the running version that does ``action`` ("apply" or "rollback") once this process exits;
    the log it writes to."""
    runner = app.update_dir / RUNNER
    _clear(runner)
    try:
        shutil.copytree(app.dir, runner, symlinks=True)
    except OSError as exc:
        raise UpdateError(f"cannot copy {app.dir} to {runner} to finish the update from there: {exc}") from exc
    log = app.update_dir / LOG
    argv = [
        str(runner / app.executable.name),
        *cli_args,
        "update",
        "finish",
        action,
        "--app-dir",
        str(app.dir),
        "--after-pid",
        str(os.getpid()),
        "--relaunch",
        relaunch,
        *(["--was-running"] if was_running else []),
    ]
    kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "cwd": str(app.update_dir)}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    with log.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {action} handed to {runner}\n".encode())
        out.flush()
        try:
            subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        except OSError as exc:
            raise UpdateError(f"cannot start {argv[0]} to finish the update: {exc}") from exc
    return log


def wait_for_exit(pid: int, limit_s: float = EXIT_WAIT_S) -> None:
    """Return once process ``pid`` has exited; an ``UpdateError`` after ``limit_s``."""
    import psutil

    try:
        psutil.Process(pid).wait(timeout=limit_s)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired as exc:
        raise UpdateError(f"process {pid} did not exit within {limit_s:.0f} s: nothing was changed") from exc


def _clear(runner: Path) -> None:
    """Remove the runner an earlier update left; one still running (it is ending) is left to end."""
    if not runner.exists():
        return
    try:
        shutil.rmtree(runner)
    except OSError as exc:
        raise UpdateError(
            f"an earlier update's runner in {runner} is still in use: try again in a moment ({exc})"
        ) from exc
