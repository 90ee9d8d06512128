"""Temp files that can no longer become their file are removed by the next scan, on either side of a share."""

from __future__ import annotations

import os
import time
from pathlib import Path

from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.localfs import temp_name
from noizylab_desktop.services.sync.scanner import scan


def test_a_temp_whose_path_became_a_folder_or_settled_is_removed_and_a_new_files_temp_stays(tmp_path: Path) -> None:
    root = tmp_path / "share"
    (root / "clip").mkdir(parents=True)
    (root / "clip" / "inside.txt").write_text("the folder that replaced the file")
    (root / "done.bin").write_bytes(b"landed by another route")
    hour_ago = time.time() - 3600
    for rel in ("clip", "done.bin", "new.bin"):
        (root / temp_name(rel)).write_bytes(b"partial")
        os.utime(root / temp_name(rel), (hour_ago, hour_ago))
    index = ShareIndex(tmp_path / "index.sqlite")
    try:
        scan(root, index)
    finally:
        index.close()
    assert not (root / temp_name("clip")).exists(), "its path is a folder now"
    assert not (root / temp_name("done.bin")).exists(), "its file was written after it"
    assert (root / temp_name("new.bin")).exists(), "a new file's transfer resumes into it"
