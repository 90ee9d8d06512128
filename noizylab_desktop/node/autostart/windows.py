"""Start at login on Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.

Per user, no administrator rights, and what Task Manager's "Startup apps" lists. Task Manager switches an entry off
without deleting it, in ``...\\Explorer\\StartupApproved\\Run`` (a binary value whose first byte is odd when off):
that reads as ``disabled`` here, and ``on`` clears it so the switch means what it says.

The registry is reached through ``RegistryKey``, so the logic runs anywhere; ``WinregKey`` is the real one
(``winreg``, Windows only), tested under Wine in the Windows tier with ``reg query``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Protocol

from noizylab_desktop.core.errors import LauncherError
from noizylab_desktop.node.autostart.base import AutostartStatus, State

RUN = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"


class RegistryKey(Protocol):
    """Values of one key under HKEY_CURRENT_USER."""

    def get(self, key: str, name: str) -> str | bytes | None:
        """The value ``name`` of ``key``, or None when either is missing."""
        ...

    def set_string(self, key: str, name: str, value: str) -> None:
        """Write a REG_SZ value, creating the key if needed."""
        ...

    def delete(self, key: str, name: str) -> None:
        """Remove a value; nothing when it is not there."""
        ...


if sys.platform == "win32":
    import winreg

    class WinregKey:
        """HKEY_CURRENT_USER through ``winreg``."""

        def get(self, key: str, name: str) -> str | bytes | None:
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as opened:
                    value, _kind = winreg.QueryValueEx(opened, name)
            except FileNotFoundError:
                return None
            return value if isinstance(value, (str, bytes)) else str(value)

        def set_string(self, key: str, name: str, value: str) -> None:
            with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as opened:
                winreg.SetValueEx(opened, name, 0, winreg.REG_SZ, value)

        def delete(self, key: str, name: str) -> None:
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as opened:
                    winreg.DeleteValue(opened, name)
            except FileNotFoundError:
                return


def user_registry() -> RegistryKey:
    """HKEY_CURRENT_USER of this user (Windows only)."""
    if sys.platform == "win32":
        return WinregKey()
    raise LauncherError("the Windows registry is there only on Windows")


def command_line(command: list[str]) -> str:
    """``command`` as one Windows command line (the rules ``CommandLineToArgvW`` reads back)."""
    return subprocess.list2cmdline(command)


class RunKeyAutostart:
    """The ``Run`` value ``name`` that starts ``command``."""

    def __init__(self, name: str, command: list[str], registry: RegistryKey | None = None) -> None:
        self.name = name
        self.command = command
        self.registry: RegistryKey = registry if registry is not None else user_registry()
        self.where = rf"HKCU\{RUN}\{name}"

    def _status(self, state: State, hint: str = "") -> AutostartStatus:
        return AutostartStatus(state, self.where, tuple(self.command), hint)

    def status(self) -> AutostartStatus:
        try:
            value = self.registry.get(RUN, self.name)
            approved = self.registry.get(APPROVED, self.name)
        except OSError as exc:
            raise LauncherError(f"cannot read {self.where}: {exc.strerror or exc}") from exc
        if value is None:
            return self._status("off")
        if isinstance(approved, bytes) and approved and approved[0] & 1:
            return self._status("disabled", "switched off in Task Manager: `noizylab autostart on` switches it on")
        if value != command_line(self.command):
            return self._status("stale", "it starts another command: `noizylab autostart on` points it at this one")
        return self._status("on")

    def enable(self) -> AutostartStatus:
        try:
            self.registry.set_string(RUN, self.name, command_line(self.command))
            self.registry.delete(APPROVED, self.name)
        except OSError as exc:
            raise LauncherError(f"cannot write {self.where}: {exc.strerror or exc}") from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        try:
            self.registry.delete(RUN, self.name)
            self.registry.delete(APPROVED, self.name)
        except OSError as exc:
            raise LauncherError(f"cannot remove {self.where}: {exc.strerror or exc}") from exc
        return self.status()
