"""Which clipboard backend a node without the tray uses: X11 on Linux, pyperclip elsewhere, or as configured."""

from __future__ import annotations

import os
import sys

from noizylab_desktop.core.errors import ClipboardError
from noizylab_desktop.services.clipboard.backend import ClipboardBackend


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
