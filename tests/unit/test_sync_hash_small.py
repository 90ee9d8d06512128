"""File hashes read in one go for one-block files, and block by block for larger ones, agree with in-memory ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from noizylab_desktop.services.sync import blocks
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, hash_bytes, hash_file


@pytest.mark.parametrize("size", [0, 1, 1024, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 5])
def test_a_file_hashes_as_its_content_does_whatever_its_size(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == hash_bytes(data)
    assert hash_file(str(tmp_path / "f")) == hash_bytes(data), "a plain string path, as the scanner passes"


def test_short_reads_as_on_fuse_or_network_file_systems_do_not_cut_a_file_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = os.read

    def short_read(fd: int, n: int) -> bytes:
        return real_read(fd, min(n, 1000))

    monkeypatch.setattr(blocks.os, "read", short_read)
    for size in (999, 5000, BLOCK_SIZE + 10):
        data = os.urandom(size)
        (tmp_path / f"f{size}").write_bytes(data)
        assert hash_file(tmp_path / f"f{size}") == hash_bytes(data)
