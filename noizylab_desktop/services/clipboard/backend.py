"""The ``ClipboardBackend`` protocol: how the service reads, writes and watches one machine's clipboard.

The tray feeds the service a Qt backend (``ui/clipboard_qt.py``, watching ``QClipboard.dataChanged``); headless
nodes pick one here: the X11 backend where there is an X display, else pyperclip (text only, polled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
