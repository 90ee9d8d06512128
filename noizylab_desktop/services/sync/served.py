"""Folders served to a peer's share, kept inside the node's sync folder however links on the way change.

An offer's root is checked against the real path (links followed) of ``[sync] folder`` when it is offered and
each time a call uses it. Where the OS gives a directory handle a path (Linux: ``/proc/self/fd/N``), the call
opens the root once, checks where the opened folder really is, and works through that handle for the rest of
the call, so a link swapped into the root's path after the check leads nowhere new. Elsewhere (macOS, Windows)
the call works through the real path it just checked: the portable fallback, which re-checks on every use.
Paths under the root are checked in their turn by ``names.resolve_inside`` (relative to the root's real path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from noizylab_desktop.services.sync.names import UnsafePathError, within

_PROC_FD = Path("/proc/self/fd")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def overlap(a: str, b: str) -> bool:
    """Whether one of two real paths holds the other (or they are the same folder)."""
    return within(a, b) or within(b, a)


def real_root(folder: Path, root: Path) -> str:
    """The real path of ``root``; ``UnsafePathError`` unless it is a folder strictly inside the real ``folder``."""
    base = os.path.realpath(folder)
    real = os.path.realpath(root)
    if real == base or not within(real, base):
        raise UnsafePathError(f"refused {root.name!r}: it leads outside the sync folder {folder} (through a link)")
    return real


@contextmanager
def pinned(folder: Path, root: Path) -> Iterator[Path]:
    """``root`` as a path that stays on the folder checked now, for the length of the ``with`` block."""
    real = real_root(folder, root)
    if not _PROC_FD.is_dir() or os.name == "nt":
        yield Path(real)
        return
    try:
        fd = os.open(real, _DIR_FLAGS)
    except OSError as exc:
        # A link swapped in since the check (O_NOFOLLOW), or the folder went: either way, nothing is served.
        raise UnsafePathError(f"refused {root.name!r}: it is not a plain folder inside the sync folder") from exc
    try:
        handle = _PROC_FD / str(fd)
        # Where the opened folder really is, from the kernel: a link swapped in on the way after the check shows.
        now, base = os.readlink(handle), os.path.realpath(folder)
        if now == base or not within(now, base):
            raise UnsafePathError(f"refused {root.name!r}: it leads outside the sync folder {folder} (through a link)")
        yield handle
    finally:
        os.close(fd)
