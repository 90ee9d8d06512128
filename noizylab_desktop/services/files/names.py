"""File names a peer sends: checked to be a bare name, and saved beside what is there, never over it.

A received name must be a bare file name that every OS can hold: no separator (``/`` or ``\\``), not ``.`` or
``..``, no control character, none of Windows' reserved characters or device names, no trailing dot or space, at
most ``MAX_NAME_BYTES``. The sending side makes a local name portable first (``portable_name``), so only a peer that
skips our code meets the refusal. A name already taken gets `` (1)``, `` (2)``... before its extension: the file is
linked into place (``os.link`` fails rather than replace), or created exclusively where links are not supported.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from noizylab_desktop.core.errors import InvalidRequestError
from noizylab_desktop.core.rpc_errors import one_line

MAX_NAME_BYTES = 200  # below every file system's 255, leaving room for " (NNN)"
_RESERVED_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_DEVICES = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")
_MAX_COPIES = 10_000


def check_name(name: str) -> str:
    """``name`` if it is a bare, portable file name; else an ``InvalidRequestError`` naming it."""
    why = ""
    if not name or name in (".", ".."):
        why = "is not a file name"
    elif "/" in name or "\\" in name:
        why = "is a path, not a bare file name"
    elif _RESERVED_CHARS.search(name) or not name.isprintable():
        why = 'holds a character file names cannot hold (a control character or one of <>:"|?*)'
    elif _DEVICES.fullmatch(name) or name[-1] in ". ":
        why = "is a name Windows cannot hold"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        why = f"is longer than {MAX_NAME_BYTES} bytes"
    if why:
        raise InvalidRequestError(one_line(f"the file name {name!r} {why}", 300))
    return name


def portable_name(name: str) -> str:
    """A local file's name as ``check_name`` takes it: reserved characters become ``_``, too long is shortened."""
    name = _RESERVED_CHARS.sub("_", name).rstrip(". ") or "file"
    if _DEVICES.fullmatch(name):
        name = f"_{name}"
    stem, dot, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
    while len(f"{stem}{dot}{ext}".encode()) > MAX_NAME_BYTES:
        stem = stem[:-1] if len(stem) > 1 else stem
        if len(stem) <= 1:
            ext = ext[:-1]
    return f"{stem}{dot}{ext}"


def candidates(name: str) -> list[str]:
    """``name``, then ``name (1)``, ``name (2)``... with the number before the extension."""
    stem, dot, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
    return [name, *(f"{stem} ({n}){dot}{ext}" for n in range(1, _MAX_COPIES))]


def place(part: Path, folder: Path, name: str) -> str:
    """Move the finished ``part`` into ``folder`` under ``name`` or the first free variant; the name it took."""
    for candidate in candidates(check_name(name)):
        target = folder / candidate
        try:
            os.link(part, target)
        except FileExistsError:
            continue
        except OSError:
            # No hard links here (FAT, some network shares): create the name exclusively and copy into it.
            try:
                with open(target, "xb") as out, open(part, "rb") as src:
                    shutil.copyfileobj(src, out)
                    out.flush()
                    os.fsync(out.fileno())
            except FileExistsError:
                continue
        part.unlink()
        return candidate
    raise InvalidRequestError(f"{folder} already holds {_MAX_COPIES} files called {name!r}")
