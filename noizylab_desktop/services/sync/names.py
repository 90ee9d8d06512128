"""Path safety and names that every OS can hold.

Paths on the wire are relative, ``/``-separated and NFC. Anything absolute or with ``..`` is refused, and a path
whose real location (after links) leaves the share is refused too. Names that Windows cannot hold (``<>:"\\|?*``,
control characters, a trailing dot or space, reserved device names) are mapped into the Unicode private-use range
U+F000–U+F07F, as macOS's SMB client and Cygwin do, so the mapping is reversible and shows sensibly on every OS.
The driving side applies it (``encode_path``/``decode_path``) for the other side's OS, which a NOIZYLAB peer
reports in its ``Offer`` reply: names travel and are indexed in their original form, and only the side that
cannot hold a name stores it encoded. Paths for macOS go as NFD, and every path read back is NFC again.
"""

from __future__ import annotations

import os
import platform
import re
import string
import unicodedata
from pathlib import Path

from noizylab_desktop.core.errors import SyncError

_WINDOWS_BAD = set('<>:"\\|?*') | {chr(c) for c in range(1, 32)}
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_PRIVATE = 0xF000
# What encode_windows can produce: the bad characters, a trailing dot or space, the last letter or digit of a stem.
_DECODE = {chr(_PRIVATE + ord(c)): c for c in (*_WINDOWS_BAD, ".", " ", *string.ascii_letters, *string.digits)}


_DRIVE = re.compile(r"[A-Za-z]:[\\/]")  # a Windows drive: C:\ or C:/
_LOOPS = frozenset(("", ".", ".."))  # path components that leave the share or loop in it


class UnsafePathError(SyncError):
    """A path that would leave the share (``..``, absolute, a link pointing outside)."""


class NameError_(SyncError):
    """A name that the other side's OS cannot hold and that cannot be encoded."""


def check_rel(rel: str) -> str:
    """``rel`` as a safe relative wire path, or ``UnsafePathError``."""
    if not rel or "\x00" in rel:
        raise UnsafePathError(f"refused an empty path or one with a NUL byte: {rel!r}")
    if rel.startswith(("/", "\\")) or _DRIVE.match(rel):
        raise UnsafePathError(f"refused an absolute path: {rel!r} (shares take paths relative to their folder)")
    if not _LOOPS.isdisjoint(rel.split("/")):
        raise UnsafePathError(f"refused a path that leaves or loops in the share: {rel!r}")
    return rel if rel.isascii() else unicodedata.normalize("NFC", rel)


def within(real: str, base: str) -> bool:
    """Whether the real path ``real`` is ``base`` or lies under it."""
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def resolve_inside(root: Path, rel: str) -> Path:
    """The on-disk path of ``rel`` under ``root``; refuses one whose real location (links followed) is outside.
    The name is taken as given, not NFC: a side holding NFD names (macOS) is asked for them in NFD."""
    check_rel(rel)
    path = root.joinpath(*(rel if rel.isascii() else on_disk(root, rel)).split("/"))
    if not within(os.path.realpath(path), os.path.realpath(root)):
        raise UnsafePathError(f"refused {rel!r}: it leads outside the share (through a link)")
    return path


def on_disk(root: Path, rel: str) -> str:
    """``rel`` (NFC) with each folder or file name that exists under ``root`` only in NFD (made on a Mac) spelled so."""
    parts: list[str] = []
    here = root
    for part in rel.split("/"):
        nfd = unicodedata.normalize("NFD", part)
        if nfd != part and not os.path.lexists(here / part) and os.path.lexists(here / nfd):
            part = nfd
        parts.append(part)
        here = here / part
    return "/".join(parts)


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
    """The original name of an ``encode_windows`` result (only characters it can produce are mapped back, so a
    stored name can never decode into a ``/`` or a NUL)."""
    return "".join(_DECODE.get(c, c) for c in name)


def encode_path(rel: str, target_os: str) -> str:
    """A wire path as the target OS stores it: every component encoded for Windows, NFD for macOS (HFS+ stores
    NFD and APFS finds either form, so NFD reaches the file on both), unchanged elsewhere."""
    if target_os == "windows":
        return "/".join(encode_windows(p) for p in rel.split("/"))
    if target_os == "darwin" and not rel.isascii():
        return unicodedata.normalize("NFD", rel)
    return rel


def decode_path(stored: str, target_os: str = "windows") -> str:
    """A path as the target OS stores it back to its wire form (NFC; original characters from Windows)."""
    if target_os == "windows":
        stored = "/".join(decode_windows(p) for p in stored.split("/"))
    return stored if stored.isascii() else unicodedata.normalize("NFC", stored)


def case_insensitive(target_os: str) -> bool:
    """Whether the target OS's usual filesystem (NTFS, APFS) sees names differing only in case as one file."""
    return target_os in ("windows", "darwin")


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


def this_os() -> str:
    """This node's OS as its ``Offer`` reply tells a driving peer (which then stores names as this OS can hold them).

    ``NOIZYLAB_TEST_SYNC_OS`` stands in for the OS in tests: there is no Windows or macOS host here, so a Linux node
    serves as one, holding names exactly as that OS would (the encoding itself is the real one)."""
    injected = os.environ.get("NOIZYLAB_TEST_SYNC_OS", "")
    if injected in ("linux", "darwin", "windows"):
        return injected
    return {"Darwin": "darwin", "Windows": "windows"}.get(platform.system(), "linux")
