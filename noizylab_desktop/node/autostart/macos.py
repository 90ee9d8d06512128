"""Start at login on macOS: ``SMAppService`` on macOS 13 and later, a LaunchAgent plist below that.

``SMAppService.mainAppService()`` registers the app bundle itself as a login item (System Settings → General →
Login Items lists it by name). macOS may hold a new registration until the person allows it there: that is the
``needs approval`` state, which the tray's switch and ``autostart status`` show. It is reached through PyObjC's
ServiceManagement (``pyobjc-framework-ServiceManagement``) behind ``LoginItemApi``, so the choice and the states are
tested anywhere with a stand-in for the macOS API.

The main app service starts the bundle without arguments, so it serves the platform's own home from a frozen
``NOIZYLAB.app``. A run from Python, a ``--home`` node, macOS 12 or a missing PyObjC get a LaunchAgent instead:
``~/Library/LaunchAgents/<label>.plist`` with the exact command, loaded by launchd at the next login.
"""

from __future__ import annotations

import platform
import plistlib
import sys
from pathlib import Path
from typing import Any, Protocol

from noizylab_desktop.core.errors import LauncherError
from noizylab_desktop.node.autostart.base import Autostart, AutostartStatus, State

# SMAppServiceStatus
NOT_REGISTERED, ENABLED, REQUIRES_APPROVAL, NOT_FOUND = 0, 1, 2, 3
APPROVE_HINT = "allow NOIZYLAB in System Settings → General → Login Items"
LABEL = "com.noizylab.desktop"


class LoginItemApi(Protocol):
    """The app's own ``SMAppService`` (macOS 13+)."""

    def status(self) -> int:
        """An ``SMAppServiceStatus``."""
        ...

    def register(self) -> None:
        """Register the app as a login item; ``LauncherError`` when macOS refuses."""
        ...

    def unregister(self) -> None:
        """Take it out of the login items; ``LauncherError`` when macOS refuses."""
        ...


class PyObjcLoginItem:
    """``SMAppService.mainAppService()`` through PyObjC."""

    def __init__(self) -> None:
        from ServiceManagement import SMAppService  # type: ignore[import-not-found]

        self._service: Any = SMAppService.mainAppService()

    def status(self) -> int:
        return int(self._service.status())

    def register(self) -> None:
        ok, error = self._service.registerAndReturnError_(None)
        if not ok:
            raise LauncherError(f"macOS refused to add NOIZYLAB to the login items: {error.localizedDescription()}")

    def unregister(self) -> None:
        ok, error = self._service.unregisterAndReturnError_(None)
        if not ok:
            why = error.localizedDescription()
            raise LauncherError(f"macOS refused to remove NOIZYLAB from the login items: {why}")


class LoginItemAutostart:
    """The app bundle as a login item (``SMAppService``)."""

    where = "System Settings → General → Login Items (SMAppService)"

    def __init__(self, api: LoginItemApi, command: list[str]) -> None:
        self.api = api
        self.command = command

    def _status(self, state: State, hint: str = "") -> AutostartStatus:
        return AutostartStatus(state, self.where, tuple(self.command), hint)

    def status(self) -> AutostartStatus:
        code = self.api.status()
        if code == ENABLED:
            return self._status("on")
        if code == REQUIRES_APPROVAL:
            return self._status("needs approval", APPROVE_HINT)
        return self._status("off")

    def enable(self) -> AutostartStatus:
        if self.api.status() not in (ENABLED, REQUIRES_APPROVAL):
            self.api.register()
        return self.status()

    def disable(self) -> AutostartStatus:
        if self.api.status() in (ENABLED, REQUIRES_APPROVAL):
            self.api.unregister()
        return self.status()


def launch_agent(label: str, command: list[str]) -> dict[str, Any]:
    """The LaunchAgent's plist (launchd.plist(5)): run ``command`` once at login, in the person's GUI session."""
    return {
        "Label": label,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
    }


class LaunchAgentAutostart:
    """``~/Library/LaunchAgents/<label>.plist``."""

    def __init__(self, label: str, command: list[str], folder: Path | None = None) -> None:
        self.label = label
        self.command = command
        self.path = (folder or Path.home() / "Library" / "LaunchAgents") / f"{label}.plist"

    def _status(self, state: State, hint: str = "") -> AutostartStatus:
        return AutostartStatus(state, str(self.path), tuple(self.command), hint)

    def status(self) -> AutostartStatus:
        try:
            data = plistlib.loads(self.path.read_bytes())
        except FileNotFoundError:
            return self._status("off")
        except (OSError, plistlib.InvalidFileException, ValueError) as exc:
            return self._status("stale", f"it cannot be read ({exc}): `noizylab autostart on` writes it afresh")
        if not isinstance(data, dict) or data.get("Disabled") is True:
            return self._status("off", "the agent is there but disabled: `noizylab autostart on` enables it")
        if data.get("ProgramArguments") != list(self.command):
            return self._status("stale", "it starts another command: `noizylab autostart on` points it at this one")
        return self._status("on")

    def enable(self) -> AutostartStatus:
        from noizylab_desktop.core.config import atomic_write

        try:
            atomic_write(self.path, plistlib.dumps(launch_agent(self.label, self.command)), mode=0o644)
        except OSError as exc:
            raise LauncherError(f"cannot write {self.path}: {exc.strerror}: check that folder's permissions") from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise LauncherError(f"cannot remove {self.path}: {exc.strerror}: remove it by hand") from exc
        return self.status()


def label_for(name: str) -> str:
    """``com.noizylab.desktop`` for the platform's own home, ``com.noizylab.desktop.<hex>`` for a ``--home``."""
    suffix = name.removeprefix("noizylab").lstrip("-")
    return f"{LABEL}.{suffix}" if suffix else LABEL


def macos_major(version: str | None = None) -> int:
    """macOS's major version (13 for Ventura); 0 when unknown."""
    text = platform.mac_ver()[0] if version is None else version
    try:
        return int(text.split(".")[0])
    except ValueError:
        return 0


def in_app_bundle(command: list[str]) -> bool:
    """Whether ``command`` is a frozen app inside a ``.app`` bundle (``.../NOIZYLAB.app/Contents/MacOS/noizylab``)."""
    return len(command) == 1 and ".app/Contents/MacOS/" in command[0]


def macos_autostart(
    name: str, command: list[str], api: LoginItemApi | None = None, version: str | None = None
) -> Autostart:
    """``SMAppService`` where it can serve this home (macOS 13+, a frozen app bundle, PyObjC there), else a
    LaunchAgent. ``api`` stands in for PyObjC (tests); ``version`` for ``platform.mac_ver()``."""
    if macos_major(version) >= 13 and in_app_bundle(command):
        if api is None and sys.platform == "darwin":
            try:
                api = PyObjcLoginItem()
            except ImportError:
                api = None
        if api is not None:
            return LoginItemAutostart(api, command)
    return LaunchAgentAutostart(label_for(name), command)
