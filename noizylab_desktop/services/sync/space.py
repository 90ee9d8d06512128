"""Room on disk for what a peer sends: refused up front when it cannot fit, never discovered by filling the disk.

A file (or a batch of small files) is refused before any byte is written when its announced size is more than
the free space of the folder's disk less ``RESERVE``, or when it would take a share served to a peer past
``[sync] quota_gb`` (counted from the folder's last scan plus what sync wrote there since).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from noizylab_desktop.core.errors import SyncError

GiB = 1024**3
RESERVE = 256 * 1024 * 1024  # left free on every disk a share writes to: the OS and other programs need room too


class NoRoomError(SyncError):
    """What a peer sends does not fit: the disk's free space, or the share's quota."""


def size_text(n: int) -> str:
    """``n`` bytes for a person: 1.5 GiB, 300 MiB, 12 KiB."""
    for unit, scale in (("TiB", 1024**4), ("GiB", GiB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_free(folder: Path, size: int, what: str) -> None:
    """``NoRoomError`` when ``size`` bytes would leave less than ``RESERVE`` free on ``folder``'s disk."""
    if size < 0:
        raise NoRoomError(f"{what}: a negative size ({size}) was announced")
    free = shutil.disk_usage(folder).free
    if size > free - RESERVE:
        raise NoRoomError(
            f"{what} ({size_text(size)}) does not fit: the disk of the sync folder has {size_text(free)} free "
            f"and {size_text(RESERVE)} stay free; free space there"
        )


def check_quota(size: int, used: int, quota: int, what: str) -> None:
    """``NoRoomError`` when ``size`` more bytes take a share holding ``used`` past ``quota`` (0: no quota)."""
    if quota and used + size > quota:
        raise NoRoomError(
            f"{what} ({size_text(size)}) would take the share past its quota of {size_text(quota)} "
            f"(it holds {size_text(used)}); raise [sync] quota_gb on this node or remove files"
        )
