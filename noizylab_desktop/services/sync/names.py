"""Path safety and names that every OS can hold.

Paths on the wire are relative, ``/``-separated and NFC. Anything absolute or with ``..`` is refused, and a path
whose real location (after links) leaves the share is refused too. Names that Windows cannot hold (``<>:"\\|?*``,
control characters, a trailing dot or space, reserved device names) are mapped into the Unicode private-use range
U+F000–U+F07F, as macOS's SMB client and Cygwin do, so the mapping is reversible and shows sensibly on every OS.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from noizylab_desktop.errors import SyncError

_WINDOWS_BAD = set('<>:"\\|?*') | {chr(c) for c in range(1, 32)}
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_PRIVATE = 0xF000


class UnsafePathError(SyncError):
    """A path that would leave the share (``..``, absolute, a link pointing outside)."""


class NameError_(SyncError):
    """A name that the other side's OS cannot hold and that cannot be encoded."""


def check_rel(rel: str) -> str:
    """``rel`` as a safe relative wire path, or ``UnsafePathError``."""
    if not rel or "\x00" in rel:
        raise UnsafePathError(f"refused an empty path or one with a NUL byte: {rel!r}")
    if rel.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", rel):
        raise UnsafePathError(f"refused an absolute path: {rel!r} (shares take paths relative to their folder)")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"refused a path that leaves or loops in the share: {rel!r}")
    return unicodedata.normalize("NFC", rel)


def resolve_inside(root: Path, rel: str) -> Path:
    """The on-disk path of ``rel`` under ``root``; refuses one whose real location (links followed) is outside."""
    path = root.joinpath(*check_rel(rel).split("/"))
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"refused {rel!r}: it leads outside the share (through a link)")
    return path


def encode_windows(name: str) -> str:
    """One name made safe for Windows, reversibly (see ``decode_windows``)."""
    if any(_PRIVATE <= ord(c) < _PRIVATE + 0x80 for c in name):
        raise NameError_(f"{name!r} holds private-use characters that the Windows name encoding needs; rename it")
    out = "".join(chr(_PRIVATE + ord(c)) if c in _WINDOWS_BAD else c for c in name)
    if out and out[-1] in ". ":
        out = out[:-1] + chr(_PRIVATE + ord(out[-1]))
    stem = out.split(".", 1)[0]
    if stem.upper() in _RESERVED:
        out = out[: len(stem) - 1] + chr(_PRIVATE + ord(stem[-1])) + out[len(stem) :]
    return out


def decode_windows(name: str) -> str:
    """The original name of an ``encode_windows`` result."""
    return "".join(chr(ord(c) - _PRIVATE) if _PRIVATE <= ord(c) < _PRIVATE + 0x80 else c for c in name)


def encode_path(rel: str, target_os: str) -> str:
    """A wire path as the target OS stores it (every component encoded for Windows; NFD is left to macOS)."""
    if target_os != "windows":
        return rel
    return "/".join(encode_windows(p) for p in rel.split("/"))


def decode_path(stored: str) -> str:
    """A stored path back to its wire form (NFC, original characters)."""
    return unicodedata.normalize("NFC", "/".join(decode_windows(p) for p in stored.split("/")))


def case_collisions(paths: list[str]) -> list[str]:
    """Paths that a case-insensitive OS (Windows, macOS) would see as the same file as another one."""
    seen: dict[str, str] = {}
    clashes = []
    for p in sorted(paths):
        key = unicodedata.normalize("NFC", p).casefold()
        if key in seen:
            clashes.append(p)
        else:
            seen[key] = p
    return clashes
