"""Counted words read right for one and for many."""

from __future__ import annotations

from noizylab_desktop.core.words import plural


def test_one_is_singular_and_any_other_count_is_plural() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(2, "minute") == "2 minutes"
    assert plural(1, "copy", "copies") == "1 copy"
    assert plural(3, "copy", "copies") == "3 copies"
