"""Counted words in what a person reads: ``plural(1, "file")`` is "1 file", ``plural(2, "file")`` "2 files"."""

from __future__ import annotations


def plural(n: int, word: str, many: str = "") -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1 (``many`` where adding "s" is wrong: "copy", "copies")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
