"""Three-way merges of text files: the merge itself, and the engine against the real embedded SFTP server, where
concurrent edits of different lines become one merged file and edits of the same lines a conflict copy."""

from __future__ import annotations

import asyncio

import pytest

from noizylab_desktop.services.sync.merge import has_markers, line_ending, looks_like_text, merge_text
from tests.sync_harness import Pair, SyncPair, everything, tree

BASE = b"".join(f"line {i}\n".encode() for i in range(1, 11))


def edit(data: bytes, line: int, text: str) -> bytes:
    lines = data.splitlines(keepends=True)
    ending = b"\r\n" if lines[line - 1].endswith(b"\r\n") else b"\n"
    lines[line - 1] = text.encode() + ending
    return b"".join(lines)


def test_edits_of_different_lines_merge_cleanly() -> None:
    merged = merge_text(BASE, edit(BASE, 2, "mine"), edit(BASE, 9, "theirs"))
    assert merged.clean
    assert merged.data == edit(edit(BASE, 2, "mine"), 9, "theirs")


def test_edits_of_the_same_line_conflict_with_markers() -> None:
    merged = merge_text(BASE, edit(BASE, 5, "mine"), edit(BASE, 5, "theirs"), ("alpha", "beta"))
    assert not merged.clean
    text = merged.data.decode()
    assert has_markers(text)
    assert "<<<<<<< alpha\nmine\n=======\ntheirs\n>>>>>>> beta\n" in text


def test_the_same_edit_on_both_sides_is_taken_once() -> None:
    both = edit(BASE, 3, "same")
    assert merge_text(BASE, both, both) == merge_text(BASE, both, BASE)
    assert merge_text(BASE, both, both).data == both


def test_crlf_files_stay_crlf() -> None:
    base = BASE.replace(b"\n", b"\r\n")
    merged = merge_text(base, edit(base, 1, "mine"), edit(base, 10, "theirs"))
    assert merged.clean
    assert merged.data == edit(edit(base, 1, "mine"), 10, "theirs")
    assert line_ending(merged.data) == b"\r\n" and b"\r\n" in merged.data and b"\n\n" not in merged.data


def test_a_side_that_only_changed_line_endings_keeps_that_change() -> None:
    crlf = BASE.replace(b"\n", b"\r\n")
    merged = merge_text(BASE, crlf, edit(BASE, 4, "theirs"))
    assert merged.clean
    assert merged.data == edit(crlf, 4, "theirs")


def test_binary_content_is_refused() -> None:
    assert not looks_like_text(b"PNG\0\1\2")
    assert not looks_like_text(b"\xff\xfe broken utf-8")
    assert not looks_like_text(b"x" * 11, max_bytes=10)
    assert looks_like_text("naïve café\n".encode())
    with pytest.raises(ValueError, match="only text files"):
        merge_text(BASE, BASE + b"\0", BASE)


# ---------------------------------------------------------------------- the engine


def synced(p: SyncPair, loop: asyncio.AbstractEventLoop) -> None:
    assert loop.run_until_complete(p.sync()), p.engine and p.engine.failed


def test_concurrent_edits_of_different_lines_give_one_merged_file_on_both_sides(pair: Pair) -> None:
    p, loop = pair
    (p.local / "notes.txt").write_bytes(BASE)
    synced(p, loop)
    mine, theirs = edit(BASE, 2, "edited here"), edit(BASE, 9, "edited there")
    (p.local / "notes.txt").write_bytes(mine)
    (p.remote / "notes.txt").write_bytes(theirs)
    synced(p, loop)
    both = edit(mine, 9, "edited there")
    assert tree(p.local) == tree(p.remote) == {"notes.txt": both}, "one merged file, no conflict copy"
    assert mine in everything(p.local) and theirs in everything(p.remote), "both originals are kept as versions"
    assert p.engine is not None and (p.engine.conflicts, p.engine.merges) == (0, 1)
    assert "merged notes.txt" in p.engine.recent
    assert p.index.unresolved() == []
    # The merged file is the new ancestor: a later concurrent edit merges again.
    (p.local / "notes.txt").write_bytes(edit(both, 5, "again here"))
    (p.remote / "notes.txt").write_bytes(edit(both, 10, "again there"))
    synced(p, loop)
    assert tree(p.local)["notes.txt"] == edit(edit(both, 5, "again here"), 10, "again there")
    assert tree(p.local) == tree(p.remote)


def test_concurrent_edits_of_the_same_lines_give_a_conflict_copy_and_an_unresolved_record(pair: Pair) -> None:
    p, loop = pair
    (p.local / "notes.txt").write_bytes(BASE)
    synced(p, loop)
    (p.local / "notes.txt").write_bytes(edit(BASE, 4, "mine"))
    (p.remote / "notes.txt").write_bytes(edit(BASE, 4, "theirs"))
    synced(p, loop)
    files = tree(p.local)
    assert files == tree(p.remote) and len(files) == 2
    copy = next(name for name in files if ".sync-conflict-" in name)
    assert {files["notes.txt"], files[copy]} == {edit(BASE, 4, "mine"), edit(BASE, 4, "theirs")}
    [record] = p.index.unresolved()
    assert (record.path, record.copy, record.base) == ("notes.txt", copy, BASE)
    assert {record.file_from, record.copy_from} == {"alpha", "beta"}
    assert files["notes.txt"] == (edit(BASE, 4, "mine") if record.file_from == "alpha" else edit(BASE, 4, "theirs"))


def test_binary_files_and_files_without_a_stored_ancestor_still_get_a_conflict_copy(pair: Pair) -> None:
    p, loop = pair
    (p.local / "image.bin").write_bytes(b"\0" + BASE)
    (p.local / "big.txt").write_bytes(BASE * 20)
    p.engine.merger.max_bytes = len(BASE) * 10  # type: ignore[union-attr]  # big.txt is over the cap
    synced(p, loop)
    (p.local / "image.bin").write_bytes(b"\0" + edit(BASE, 1, "mine"))
    (p.remote / "image.bin").write_bytes(b"\0" + edit(BASE, 10, "theirs"))
    (p.local / "big.txt").write_bytes(edit(BASE * 20, 1, "mine"))
    (p.remote / "big.txt").write_bytes(edit(BASE * 20, 200, "theirs"))
    synced(p, loop)
    names = sorted(tree(p.local))
    assert len(names) == 4 and sum(".sync-conflict-" in n for n in names) == 2, names
    assert p.index.unresolved() == [], "neither is a text conflict that can be merged later"


def test_the_merge_cap_is_a_setting_with_a_one_line_error() -> None:
    from noizylab_desktop.core.errors import ConfigError
    from noizylab_desktop.core.settings_schema import parse_section
    from noizylab_desktop.services.sync.settings import SyncSettings

    assert parse_section(SyncSettings, {}).merge_max_bytes == 1024 * 1024
    assert parse_section(SyncSettings, {"merge_max_bytes": 0}).merge_max_bytes == 0
    for bad in ("1 MiB", -1, True, 2**40):
        with pytest.raises(ConfigError, match=r"^sync\.merge_max_bytes must be a whole number of bytes from 0"):
            parse_section(SyncSettings, {"merge_max_bytes": bad})
