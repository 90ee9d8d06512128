"""Counted words read right for one and for many."""

from __future__ import annotations

from noizylab_desktop.core.words import duration, plural


def test_one_is_singular_and_any_other_count_is_plural() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(2, "minute") == "2 minutes"
    assert plural(1, "copy", "copies") == "1 copy"
    assert plural(3, "copy", "copies") == "3 copies"


def test_a_duration_reads_in_seconds_then_minutes_then_hours_and_minutes() -> None:
    assert [duration(s) for s in (-1, 0, 42.9, 60, 7 * 60 + 59, 3600, 3 * 3600 + 5 * 60)] == [
        "0s", "0s", "42s", "1m", "7m", "1h00m", "3h05m",
    ]  # fmt: skip
