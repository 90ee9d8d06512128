"""Positional, binary file I/O for the sync engine on Windows, which has no os.pread/os.pwrite and opens
descriptors in text mode unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from noizylab_desktop.services.sync import fileio


def test_positional_writes_and_reads_keep_bytes_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "blocks.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o644)
    try:
        assert fileio.pwrite(fd, b"line\r\nend\x1a\n", 5) == 11
        assert fileio.pwrite(fd, memoryview(b"HEAD!"), 0) == 5
        assert fileio.pread(fd, 100, 0) == b"HEAD!line\r\nend\x1a\n", "no \\n turned to \\r\\n, no stop at Ctrl-Z"
        assert fileio.pread(fd, 3, 11) == b"end"
        assert fileio.pread(fd, 10, 1000) == b"", "past the end: nothing, not an error"
    finally:
        os.close(fd)
    assert path.read_bytes() == b"HEAD!line\r\nend\x1a\n"


def test_a_file_another_program_holds_without_sharing_is_seen_as_held_open(tmp_path: Path) -> None:
    from tests.windows.test_sync_rules import locked

    path = tmp_path / "ledger.xlsx"
    path.write_bytes(b"v1")
    assert not fileio.held_open(path)
    with open(path, "rb"):  # Python's own open shares read and write, not delete: a rename over it is refused too
        assert fileio.held_open(path)
    with locked(path):
        assert fileio.held_open(path)
    assert not fileio.held_open(path)
    assert not fileio.held_open(tmp_path), "a folder nobody holds"
