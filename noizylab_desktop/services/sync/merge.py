"""Three-way merge of text files (pure): what counts as text, the line-wise merge with ``merge3``, line endings,
and the unified diffs a proposal is shown as.

Text means UTF-8 without NUL bytes and at most the configured size. The merge compares lines with their endings
normalised to LF, so a side that only re-saved with other endings does not make every line a conflict; the result
gets the endings of the side that changed them (or the ancestor's), and both sides changing them differently is a
conflict. ``merge3`` is the Bazaar/Breezy merge: a change on one side only is taken, the same change on both
sides is taken once, and different changes to the same (or adjacent) lines are a conflict.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import merge3

DEFAULT_MAX_BYTES = 1024 * 1024
MARKERS = ("<<<<<<<", "=======", ">>>>>>>")


@dataclass(frozen=True)
class Merged:
    """The result of a merge: ``clean`` when no line conflicts; ``data`` holds conflict markers otherwise."""

    clean: bool
    data: bytes


def looks_like_text(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> bool:
    """True for content small enough to keep and merge: UTF-8 without NUL bytes."""
    if len(data) > max_bytes or b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def line_ending(data: bytes) -> bytes:
    """The file's own line ending: CRLF when most of its line breaks are CRLF, else LF."""
    crlf = data.count(b"\r\n")
    return b"\r\n" if crlf and crlf * 2 >= data.count(b"\n") else b"\n"


def with_ending(data: bytes, ending: bytes) -> bytes:
    """``data`` with every line break written as ``ending``."""
    lf = data.replace(b"\r\n", b"\n")
    return lf if ending == b"\n" else lf.replace(b"\n", ending)


def merge_text(base: bytes, mine: bytes, theirs: bytes, names: tuple[str, str] = ("mine", "theirs")) -> Merged:
    """Line-wise three-way merge of text files; refuses content that is not text (``ValueError``)."""
    for data in (base, mine, theirs):
        if not looks_like_text(data, max_bytes=max(len(data), 1)):
            raise ValueError("only text files are merged")
    endings = [line_ending(d) if b"\n" in d else b"" for d in (base, mine, theirs)]
    b_end, m_end, t_end = endings
    changed = {e for e in (m_end, t_end) if e and e != b_end}
    clean_endings = len(changed) <= 1
    ending = next(iter(changed)) if changed else (b_end or m_end or t_end or b"\n")
    lines = [d.replace(b"\r\n", b"\n").splitlines(keepends=True) for d in (base, mine, theirs)]
    m3 = merge3.Merge3(lines[0], lines[1], lines[2])
    clean = clean_endings and all(region[0] != "conflict" for region in m3.merge_regions())
    out = b"".join(
        m3.merge_lines(
            name_a=names[0].encode(),
            name_b=names[1].encode(),
            start_marker=MARKERS[0].encode(),
            mid_marker=MARKERS[1].encode(),
            end_marker=MARKERS[2].encode(),
        )
    )
    return Merged(clean, with_ending(out, ending))


def has_markers(text: str) -> bool:
    """True when some line starts with a conflict marker."""
    return any(line.startswith(MARKERS) for line in text.splitlines())


def unified(old: bytes, new: bytes, old_name: str, new_name: str) -> str:
    """A unified diff from ``old`` to ``new`` (line endings ignored), for people to read."""
    a = old.decode("utf-8", "replace").replace("\r\n", "\n").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").replace("\r\n", "\n").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, old_name, new_name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
