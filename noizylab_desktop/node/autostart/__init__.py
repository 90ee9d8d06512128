"""Start at login: one small interface, one backend per OS, no Qt.

``for_platform(paths)`` picks the backend (``sys.platform`` unless told otherwise): an XDG autostart entry on Linux
and other free desktops (``xdg.py``), the HKCU ``Run`` value on Windows (``windows.py``), ``SMAppService`` on macOS
13+ where PyObjC's ServiceManagement is there, else a LaunchAgent plist (``macos.py``). Each says the real state as
the OS has it (never a remembered flag), turns it on with the command that starts the tray of this home, and off.

The entry is named per home (``entry_name``), so several nodes on one machine (``--home``) each have their own,
and an entry whose command no longer matches this installation (the app moved) reads as ``stale`` and is rewritten
by ``on``, or by the tray when it starts (``refresh``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from noizylab_desktop.core.config import Paths
from noizylab_desktop.node.autostart.base import APP_LABEL, Autostart, AutostartStatus, State

__all__ = [
    "APP_LABEL",
    "Autostart",
    "AutostartStatus",
    "State",
    "entry_name",
    "for_platform",
    "refresh",
    "tray_command",
]


def entry_name(paths: Paths) -> str:
    """``noizylab`` for the platform's own folders; ``noizylab-<8 hex>`` for a ``--home`` (one entry per home)."""
    if paths.home is None:
        return "noizylab"
    return f"noizylab-{hashlib.sha256(str(paths.home).encode()).hexdigest()[:8]}"


def tray_command(paths: Paths, platform: str | None = None) -> list[str]:
    """The argv that starts the tray of this home: the frozen app itself, or this Python with the package.

    On Windows no console window may open at login: an unfrozen run uses ``pythonw.exe`` beside ``python.exe``, and
    the frozen console build (``noizylab-cli.exe``, what a terminal runs) names the windowed ``noizylab.exe`` beside
    it, where each is there."""
    executable = Path(sys.executable)
    frozen = bool(getattr(sys, "frozen", False))
    if (platform or sys.platform) == "win32":
        windowed = {"python.exe": "pythonw.exe", "noizylab-cli.exe": "noizylab.exe"}.get(executable.name.lower())
        if windowed and executable.with_name(windowed).exists():
            executable = executable.with_name(windowed)
    base = [str(executable)] if frozen else [str(executable), "-m", "noizylab_desktop"]
    home = ["--home", str(paths.home)] if paths.home is not None else []
    return [*base, *home]


def for_platform(paths: Paths, platform: str | None = None) -> Autostart:
    """The backend for ``platform`` (default: this one), for the tray of ``paths``' home."""
    chosen = platform or sys.platform
    command = tray_command(paths, chosen)
    if chosen == "win32":
        from noizylab_desktop.node.autostart.windows import RunKeyAutostart

        return RunKeyAutostart(entry_name(paths), command)
    if chosen == "darwin":
        from noizylab_desktop.node.autostart.macos import macos_autostart

        return macos_autostart(entry_name(paths), command)
    from noizylab_desktop.node.autostart.xdg import XdgAutostart

    return XdgAutostart(entry_name(paths), command)


def refresh(autostart: Autostart) -> AutostartStatus:
    """Rewrite an entry that starts another command than this installation's (the app moved or was upgraded to
    another folder); leave every other state as it is. Called by the tray when it starts."""
    status = autostart.status()
    return autostart.enable() if status.state == "stale" else status
