"""Counted words in what a person reads: ``plural(1, "file")`` is "1 file", ``plural(2, "file")`` "2 files"; moments
and durations."""

from __future__ import annotations

import time


def plural(n: int, word: str, many: str = "") -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1 (``many`` where adding "s" is wrong: "copy", "copies")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def when(at: float, *, seconds: bool = False) -> str:
    """``at`` (Unix time) as local ``YYYY-MM-DD HH:MM[:SS]``, as the CLI and the tray show a moment; "-" when unset."""
    if not at:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(at))


def duration(seconds: float) -> str:
    """How long something has run, as the CLI and the tray show it: ``42s``, ``7m``, ``3h05m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def size(count: float) -> str:
    """A number of bytes as a person reads it: ``512 B``, ``1.5 MB``, ``3.2 GB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
