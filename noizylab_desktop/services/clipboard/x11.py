"""The headless X11 backend: reads with ``xclip`` (TARGETS first), writes and watches through ``SelectionOwner``."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable

from noizylab_desktop.core.errors import ClipboardError
from noizylab_desktop.services.clipboard.backend import Snapshot
from noizylab_desktop.services.clipboard.content import HTML, PNG, Clip
from noizylab_desktop.services.clipboard.markers import is_secret
from noizylab_desktop.services.clipboard.x11_owner import SelectionOwner

READ_TIMEOUT_S = 5.0
# Text targets, best first: X clients that offer text offer at least one of these.
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "text/plain", "STRING", "TEXT")


class X11Backend:
    """The CLIPBOARD selection of one X display."""

    name = "x11"

    def __init__(self, display: str) -> None:
        self.display = display
        self._env = {**os.environ, "DISPLAY": display}
        self._changed: Callable[[], None] | None = None
        self._owner = SelectionOwner(display, self._on_change)

    def _on_change(self) -> None:
        if self._changed is not None:
            self._changed()

    def watch(self, changed: Callable[[], None]) -> bool:
        self._changed = changed
        return True

    def _xclip(self, target: str) -> bytes | None:
        try:
            done = subprocess.run(
                ["xclip", "-selection", "clipboard", "-o", "-t", target],
                env=self._env,
                capture_output=True,
                timeout=READ_TIMEOUT_S,
            )
        except FileNotFoundError as exc:
            raise ClipboardError("xclip is not installed: install it (apt-get install xclip)") from exc
        except subprocess.TimeoutExpired:
            return None  # an owner that does not answer has nothing for us
        return done.stdout if done.returncode == 0 else None

    def _read(self) -> Snapshot:
        listed = self._xclip("TARGETS")
        if listed is None:
            return Snapshot()
        targets = [t for t in listed.decode(errors="replace").split() if t]
        if is_secret(targets, lambda target: self._xclip(target) or b""):
            return Snapshot(secret=True)
        text = next((t for t in TEXT_TARGETS if t in targets), None)
        raw_text = self._xclip(text) if text else None
        raw_html = self._xclip(HTML) if HTML in targets else None
        png = self._xclip(PNG) if PNG in targets else None
        return Snapshot(
            Clip(
                text=raw_text.decode(errors="replace") if raw_text else "",
                html=raw_html.decode(errors="replace") if raw_html else "",
                png=png or b"",
            )
        )

    async def read(self) -> Snapshot:
        return await asyncio.to_thread(self._read)

    async def write(self, clip: Clip) -> None:
        values: dict[str, bytes] = {}
        if clip.text:
            values.update(dict.fromkeys(TEXT_TARGETS, clip.text.encode()))
        if clip.html:
            values[HTML] = clip.html.encode()
        if clip.png:
            values[PNG] = clip.png
        await asyncio.to_thread(self._owner.offer, values)

    def close(self) -> None:
        self._owner.close()
