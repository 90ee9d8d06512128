"""Start at login on Linux and other free desktops: an XDG autostart entry (``$XDG_CONFIG_HOME/autostart``).

GNOME, KDE, Xfce, LXQt and the rest start every ``.desktop`` file in that folder at login (the XDG Autostart
specification), unless it says ``Hidden=true`` or ``X-GNOME-Autostart-enabled=false``. ``TryExec`` names the
executable, so a desktop skips the entry once the app is uninstalled instead of failing at every login.

``Exec`` follows the Desktop Entry specification's two layers: each argument with a reserved character is quoted
(``"``, `````, ``$`` and ``\\`` escaped inside the quotes), ``%`` is doubled (it starts field codes), and then the
value as a whole escapes ``\\`` once more, as every string value does.
"""

from __future__ import annotations

import os
from pathlib import Path

from noizylab_desktop.core.config import atomic_write
from noizylab_desktop.core.errors import LauncherError
from noizylab_desktop.node.autostart.base import APP_LABEL, AutostartStatus, State

GROUP = "[Desktop Entry]"
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
_STRING_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def autostart_dir() -> Path:
    """``$XDG_CONFIG_HOME/autostart``; ``~/.config/autostart`` when it is unset or not absolute (as the spec says)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "autostart"


def _string(value: str) -> str:
    """A Desktop Entry string value: backslash and control characters escaped."""
    return "".join(_STRING_ESCAPES.get(c, c) for c in value)


def _quote(arg: str) -> str:
    """One ``Exec`` argument, quoted where the spec asks."""
    arg = arg.replace("%", "%%")
    if arg and not (_RESERVED & set(arg)):
        return arg
    return '"' + "".join(f"\\{c}" if c in '"`$\\' else c for c in arg) + '"'


def exec_line(command: list[str]) -> str:
    """``Exec``'s value for ``command``, as it is written in the file."""
    return _string(" ".join(_quote(arg) for arg in command))


def desktop_entry(command: list[str]) -> str:
    """The whole autostart file for ``command``."""
    lines = [
        GROUP,
        "Type=Application",
        f"Name={APP_LABEL}",
        "Comment=Join your computers into one private grid (started at login)",
        f"Exec={exec_line(command)}",
        f"TryExec={_string(command[0])}",
        "Icon=noizylab",
        "Terminal=false",
        "X-GNOME-Autostart-enabled=true",
        "X-GNOME-Autostart-Delay=2",
        "X-KDE-autostart-after=panel",
    ]
    return "\n".join(lines) + "\n"


def read_entry(text: str) -> dict[str, str]:
    """The ``[Desktop Entry]`` group's keys as written (values still escaped)."""
    keys: dict[str, str] = {}
    in_group = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            in_group = line == GROUP
        elif in_group and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), value.strip())
    return keys


class XdgAutostart:
    """An autostart entry named ``name.desktop`` that runs ``command``."""

    def __init__(self, name: str, command: list[str], folder: Path | None = None) -> None:
        self.command = command
        self.path = (folder or autostart_dir()) / f"{name}.desktop"

    def _status(self, state: State, hint: str = "") -> AutostartStatus:
        return AutostartStatus(state, str(self.path), tuple(self.command), hint)

    def status(self) -> AutostartStatus:
        try:
            keys = read_entry(self.path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            return self._status("off")
        except OSError as exc:
            raise LauncherError(f"cannot read {self.path}: {exc.strerror}: fix or delete it") from exc
        if keys.get("Hidden") == "true" or keys.get("X-GNOME-Autostart-enabled") == "false":
            return self._status("off", "the entry is there but switched off: `noizylab autostart on` switches it on")
        if keys.get("Exec") != exec_line(self.command):
            return self._status("stale", "it starts another command: `noizylab autostart on` points it at this one")
        return self._status("on")

    def enable(self) -> AutostartStatus:
        try:
            atomic_write(self.path, desktop_entry(self.command).encode(), mode=0o644)
        except OSError as exc:
            raise LauncherError(f"cannot write {self.path}: {exc.strerror}: check that folder's permissions") from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise LauncherError(f"cannot remove {self.path}: {exc.strerror}: remove it by hand") from exc
        return self.status()
