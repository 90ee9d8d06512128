"""The pure parts of sync: ignore rules, path safety, name encoding, conflict names, hashing, settings, planner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import ConfigError, SyncError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, changed_blocks, hash_bytes, hash_file
from noizylab_desktop.services.sync.conflicts import conflict_name, is_conflict_copy, version_name
from noizylab_desktop.services.sync.ignore import Ignore
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.names import (
    UnsafePathError,
    case_collisions,
    check_rel,
    decode_path,
    encode_path,
    encode_windows,
    resolve_inside,
)
from noizylab_desktop.services.sync.planner import Entry, plan
from noizylab_desktop.services.sync.scanner import scan
from noizylab_desktop.services.sync.settings import SyncSettings


def e(path: str, content: str, mtime: int = 1) -> Entry:
    return Entry(path, len(content), mtime, hash_bytes(content.encode()).digest)


def kinds(local: list[Entry], remote: list[Entry], ancestor: list[Entry]) -> list[tuple[str, str]]:
    decided = plan({x.path: x for x in local}, {x.path: x for x in remote}, {x.path: x for x in ancestor}, "a", "b")
    return [(act.kind, act.path) for act in decided.actions]


def test_nzignore_uses_gitignore_syntax_and_always_hides_sync_internals(tmp_path: Path) -> None:
    (tmp_path / ".nzignore").write_text("*.log\nbuild/\n!keep.log\n")
    rules = Ignore.load(tmp_path)
    assert rules.ignored("x.log") and rules.ignored("deep/x.log") and not rules.ignored("keep.log")
    assert rules.ignored("build", is_dir=True) and not rules.ignored("build.txt")
    assert rules.ignored(".nzversions", is_dir=True) and rules.ignored("d/.nzsync-abc.tmp")
    assert not rules.ignored(".nzignore")


def test_paths_that_leave_the_share_are_refused(tmp_path: Path) -> None:
    for bad in ("../x", "a/../../x", "/etc/passwd", "C:\\x", "a//b", "", "a/./b", "x\x00"):
        with pytest.raises(UnsafePathError):
            check_rel(bad)
    assert check_rel("a:b/c d.txt") == "a:b/c d.txt"
    assert check_rel("cafe\u0301") == "caf\u00e9", "wire paths are NFC"
    (tmp_path / "share").mkdir()
    os.symlink("/etc", tmp_path / "share" / "out")
    with pytest.raises(UnsafePathError, match="leads outside the share"):
        resolve_inside(tmp_path / "share", "out/passwd")
    assert resolve_inside(tmp_path / "share", "new/file") == tmp_path / "share" / "new" / "file"


def test_names_windows_cannot_hold_are_encoded_reversibly() -> None:
    for name in ('a<b>:"c|?*.txt', "trailing.", "trailing ", "CON", "aux.txt", "com1.tar.gz", "plain.txt"):
        encoded = encode_windows(name)
        assert not set('<>:"|?*') & set(encoded)
        assert not encoded.endswith((".", " "))
        assert encoded.split(".")[0].upper() not in ("CON", "AUX", "COM1")
        assert decode_path(encoded) == name
    assert encode_windows("plain.txt") == "plain.txt"
    assert decode_path(encode_path("d:ir/f?le", "windows")) == "d:ir/f?le"
    assert encode_path("d:ir/f?le", "linux") == "d:ir/f?le"
    with pytest.raises(SyncError, match="private-use"):
        encode_windows("x\uf03a")
    assert case_collisions(["Readme.md", "README.md", "other"]) == ["Readme.md"]


def test_conflict_copies_are_named_the_same_everywhere_and_never_nest() -> None:
    at = 1_700_000_000 * 10**9
    assert conflict_name("docs/report.txt", at, "beta") == "docs/report.sync-conflict-20231114-221320-beta.txt"
    assert conflict_name("Makefile", at, "b/x") == "Makefile.sync-conflict-20231114-221320-b_x"
    assert conflict_name(".bashrc", at, "beta") == ".bashrc.sync-conflict-20231114-221320-beta"
    taken = {"a.sync-conflict-20231114-221320-beta.txt"}
    assert conflict_name("a.txt", at, "beta", taken) == "a.sync-conflict-20231114-221320-beta-2.txt"
    assert is_conflict_copy("a.sync-conflict-20231114-221320-beta.txt") and not is_conflict_copy("a.txt")
    assert version_name("d/a.txt", 1_700_000_000) == ".nzversions/d/a~20231114-221320.txt"
    assert version_name("a", 1_700_000_000, 3) == ".nzversions/a~20231114-221320-3"
    copy = e("a.sync-conflict-20231114-221320-beta.txt", "x")
    newer_there = e(copy.path, "y", 5)
    assert kinds([e(copy.path, "z", 2)], [newer_there], [copy]) == [("pull", copy.path)]


def test_block_hashes_find_exactly_the_changed_blocks(tmp_path: Path) -> None:
    data = os.urandom(5 * BLOCK_SIZE + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    on_disk = hash_file(path)
    assert on_disk == hash_bytes(data) and on_disk.block_count == 6
    edited = bytearray(data)
    edited[2 * BLOCK_SIZE + 5] ^= 0xFF
    new = hash_bytes(bytes(edited) + b"tail")
    assert changed_blocks(on_disk.blocks, new.blocks, new.size) == [2, 5]
    assert changed_blocks(b"", hash_bytes(b"").blocks, 0) == []


def test_the_planner_decides_each_case() -> None:
    a1, a2, b2 = e("f", "one"), e("f", "two", 2), e("f", "other", 3)
    assert kinds([a1], [a1], [a1]) == []
    assert kinds([a2], [a1], [a1]) == [("push", "f")]
    assert kinds([a1], [a2], [a1]) == [("pull", "f")]
    assert kinds([], [a1], [a1]) == [("delete_remote", "f")]
    assert kinds([a1], [], [a1]) == [("delete_local", "f")]
    assert kinds([], [], [a1]) == [("forget", "f")]
    assert kinds([a2], [a2], [a1]) == [("record", "f")]
    assert kinds([a2], [], [a1]) == [("push", "f")]
    assert kinds([a2], [b2], [a1]) == [("conflict", "f")]
    assert kinds([a2], [b2], []) == [("conflict", "f")]
    assert kinds([e("g", "one")], [a1], [a1]) == [("rename_remote", "g")]
    assert kinds([a1], [e("g", "one")], [a1]) == [("rename_local", "g")]
    decided = plan({"f": a2}, {"f": b2}, {"f": a1}, "alpha", "beta")
    (conflict,) = decided.actions
    assert conflict.winner == "remote" and conflict.copy_path == "f.sync-conflict-19700101-000000-alpha"


def test_the_mass_delete_guard_counts_against_tracked_files() -> None:
    tracked = {f"f{i}": e(f"f{i}", str(i)) for i in range(10)}
    keep = {k: v for k, v in tracked.items() if k not in ("f0", "f1", "f2", "f3")}
    assert plan(keep, tracked, tracked, "a", "b").too_many_deletes()
    assert not plan({k: v for k, v in tracked.items() if k != "f0"}, tracked, tracked, "a", "b").too_many_deletes()


def test_rescans_hash_only_files_that_changed(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    for i in range(5):
        (root / f"{i}.txt").write_text(str(i))
        os.utime(root / f"{i}.txt", (1_000_000, 1_000_000))
    os.symlink("/etc/passwd", root / "link")
    index = ShareIndex(tmp_path / "i.sqlite")
    first = scan(root, index)
    assert first.hashed == 5 and sorted(first.entries) == [f"{i}.txt" for i in range(5)]
    assert first.skipped_links == ["link"]
    assert scan(root, index).hashed == 0
    (root / "3.txt").write_text("changed")
    again = scan(root, index)
    assert again.hashed == 1 and again.entries["3.txt"].hash == hash_bytes(b"changed").digest
    index.close()


def test_sync_settings_are_validated_with_one_line_errors(tmp_path: Path) -> None:
    assert parse_section(SyncSettings, {"folder": str(tmp_path), "quiet_ms": 100}).quiet_ms == 100
    for bad, fragment in (
        ({"quiet_ms": 900}, "from 0 to 300"),
        ({"rescan_s": "soon"}, "rescan_s must be a number of seconds"),
        ({"poll_s": 0}, "above 0"),
        ({"colour": 1}, "unknown setting sync.colour"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            parse_section(SyncSettings, bad)


def test_out_of_inotify_watches_falls_back_to_polling_and_names_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import errno

    from noizylab_desktop.services.sync import watcher as watcher_mod

    class Exhausted(watcher_mod.Observer):  # type: ignore[misc, valid-type]
        def schedule(self, *args: object, **kwargs: object) -> object:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher_mod, "Observer", Exhausted)
    loop = asyncio.new_event_loop()
    batches: list[set[str]] = []
    watcher = watcher_mod.Watcher(tmp_path, loop, batches.append, quiet_s=0.01)
    try:
        watcher.start()
        assert watcher.polling
        assert "fs.inotify.max_user_watches" in watcher.warning and str(tmp_path) in watcher.warning
        (tmp_path / "new.txt").write_text("x")

        async def seen() -> None:
            while not batches:
                await asyncio.sleep(0.05)  # the loop must run for the polling observer's batch to arrive

        loop.run_until_complete(asyncio.wait_for(seen(), 10))
        assert "new.txt" in batches[0]
    finally:
        watcher.stop()
        loop.close()


def test_old_versions_are_pruned_and_recent_ones_kept(tmp_path: Path) -> None:
    from noizylab_desktop.services.sync.localfs import LocalFs, prune_versions

    fs = LocalFs(tmp_path)
    (tmp_path / "a.txt").write_text("v1")
    kept = fs.keep_version("a.txt")
    assert kept is not None and (tmp_path / kept).read_text() == "v1"
    assert fs.keep_version("a.txt") != kept, "a second version in the same second gets its own name"
    assert prune_versions(tmp_path, keep_s=3600) == 0
    assert prune_versions(tmp_path, keep_s=-60) == 2  # a retention that keeps nothing, clock ticks aside
    assert (tmp_path / "a.txt").read_text() == "v1", "pruning touches only the versions folder"


def test_a_replace_that_fails_leaves_no_version_behind(tmp_path: Path) -> None:
    """On Windows a file another process holds open refuses the rename over it on every retry (the Windows tier,
    tests/windows/test_sync_rules.py): each try kept one more version of the unchanged file until this held."""
    from noizylab_desktop.services.sync.ignore import VERSIONS_DIR
    from noizylab_desktop.services.sync.localfs import LocalFs

    fs = LocalFs(tmp_path)
    (tmp_path / "a.txt").write_text("v1")
    refused = tmp_path / "incoming"  # a folder cannot be renamed over a file: the rename fails as the lock makes it
    refused.mkdir()
    for _ in range(3):
        with pytest.raises(OSError):
            fs.replace(refused, tmp_path / "a.txt", 1_700_000_000_000_000_000, keep="a.txt")
    assert not (tmp_path / VERSIONS_DIR).exists() or not any((tmp_path / VERSIONS_DIR).rglob("*.txt"))
    assert (tmp_path / "a.txt").read_text() == "v1"
    (tmp_path / "new").write_text("v2")
    fs.replace(tmp_path / "new", tmp_path / "a.txt", 1_700_000_000_000_000_000, keep="a.txt")
    assert [p.read_text() for p in (tmp_path / VERSIONS_DIR).rglob("*.txt")] == ["v1"], "a replace that lands keeps one"
