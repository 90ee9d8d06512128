"""The ``ClipboardBackend`` protocol: how the service reads, writes and watches one machine's clipboard.

The tray feeds the service a Qt backend (``ui/clipboard_qt.py``, watching ``QClipboard.dataChanged``); headless
nodes pick one here: the X11 backend where there is an X display, else pyperclip (text only, polled).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from noizylab_desktop.core.errors import ClipboardError
from noizylab_desktop.services.clipboard.content import Clip


@dataclass(frozen=True)
class Snapshot:
    """The clipboard as read once: its content, or ``secret`` when a password manager marked it."""

    clip: Clip = field(default_factory=Clip)
    secret: bool = False


class ClipboardBackend(Protocol):
    """One machine's clipboard. ``watch`` returns False when the service must poll ``read`` instead."""

    name: str

    def watch(self, changed: Callable[[], None]) -> bool:
        """Call ``changed`` (from any thread) whenever the clipboard's owner or content changes."""

    async def read(self) -> Snapshot:
        """The clipboard now; secret content is reported as such and never returned."""

    async def write(self, clip: Clip) -> None:
        """Put ``clip`` on the clipboard, every format at once."""

    def close(self) -> None:
        """Release the clipboard and any thread or connection."""


def headless_backend(choice: str = "auto") -> ClipboardBackend:
    """The backend for a node without the tray: ``x11`` or ``pyperclip``, or the best one here (``auto``)."""
    if choice == "auto":
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            raise ClipboardError("no X display here (DISPLAY is not set), so this node has no clipboard to sync")
        choice = "x11" if sys.platform.startswith("linux") else "pyperclip"
    if choice == "x11":
        from noizylab_desktop.services.clipboard.x11 import X11Backend

        display = os.environ.get("DISPLAY", "")
        if not display:
            raise ClipboardError("the x11 clipboard backend needs an X display: set DISPLAY or use backend = 'auto'")
        return X11Backend(display)
    if choice == "pyperclip":
        from noizylab_desktop.services.clipboard.fallback import PyperclipBackend

        return PyperclipBackend()
    raise ClipboardError(f"unknown clipboard backend {choice!r}: use auto, x11 or pyperclip in [clipboard]")
