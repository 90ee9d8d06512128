"""The ``[clipboard]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noizylab_desktop.core.settings_schema import section, setting, to_table

SECTION = "clipboard"
BACKENDS = ("auto", "x11", "pyperclip")


@section(SECTION)
@dataclass(frozen=True)
class ClipboardSettings:
    """Size cap, pause switch (the tray's one click, persisted), backend choice and polling interval."""

    max_bytes: int = setting(10 * 1024 * 1024, low=1024, high=1024**3, unit="bytes")
    paused: bool = setting(False)
    backend: str = setting("auto", choices=BACKENDS)
    poll_s: float = setting(0.25, low=0.05, high=10, unit="seconds")

    def to_table(self) -> dict[str, Any]:
        """The ``[clipboard]`` table to save."""
        return to_table(self)
