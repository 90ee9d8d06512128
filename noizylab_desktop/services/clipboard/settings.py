"""The ``[clipboard]`` table of the node's config, parsed and validated once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noizylab_desktop.core.errors import ConfigError

SECTION = "clipboard"
BACKENDS = ("auto", "x11", "pyperclip")


@dataclass(frozen=True)
class ClipboardSettings:
    """Size cap, pause switch (the tray's one click, persisted), backend choice and polling interval."""

    max_bytes: int = 10 * 1024 * 1024
    paused: bool = False
    backend: str = "auto"
    poll_s: float = 0.25

    def to_table(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes, "paused": self.paused, "backend": self.backend, "poll_s": self.poll_s}


def parse(table: Mapping[str, Any]) -> ClipboardSettings:
    """``[clipboard]`` as settings, or a one-line ``ConfigError`` naming the bad key."""
    default = ClipboardSettings()
    unknown = set(table) - set(default.to_table())
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r} in [clipboard]: use {', '.join(default.to_table())}")
    max_bytes = table.get("max_bytes", default.max_bytes)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 1024 <= max_bytes <= 1024**3:
        raise ConfigError(
            f"[clipboard] max_bytes must be a whole number of bytes from 1024 to 1 GiB, not {max_bytes!r}"
        )
    paused = table.get("paused", default.paused)
    if not isinstance(paused, bool):
        raise ConfigError(f"[clipboard] paused must be true or false, not {paused!r}")
    backend = table.get("backend", default.backend)
    if backend not in BACKENDS:
        raise ConfigError(f"[clipboard] backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    poll_s = table.get("poll_s", default.poll_s)
    if isinstance(poll_s, bool) or not isinstance(poll_s, int | float) or not 0.05 <= poll_s <= 10:
        raise ConfigError(f"[clipboard] poll_s must be between 0.05 and 10 seconds, not {poll_s!r}")
    return ClipboardSettings(max_bytes=max_bytes, paused=paused, backend=str(backend), poll_s=float(poll_s))
