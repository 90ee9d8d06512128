"""The sync engine against the real embedded SFTP server, in one process: transfers, deltas, conflicts, guards."""

from __future__ import annotations

import asyncio
import os

import pytest

from noizylab_desktop.services.sync.events import ShareChanged
from tests.sync_harness import Pair, SyncPair, tree


def test_both_sides_converge_and_a_second_sync_changes_nothing(pair: Pair) -> None:
    p, loop = pair
    (p.local / "a").mkdir()
    (p.local / "a" / "one.txt").write_text("one")
    (p.remote / "two.txt").write_text("two")
    assert loop.run_until_complete(p.sync())
    assert tree(p.local) == tree(p.remote) == {"a/one.txt": b"one", "two.txt": b"two"}
    before = {q: q.stat().st_mtime_ns for q in [*p.local.rglob("*"), *p.remote.rglob("*")]}
    sent = p.remote_side.bytes_sent + p.remote_side.bytes_received
    assert loop.run_until_complete(p.sync())
    assert {q: q.stat().st_mtime_ns for q in [*p.local.rglob("*"), *p.remote.rglob("*")]} == before
    assert p.remote_side.bytes_sent + p.remote_side.bytes_received == sent


def test_empty_files_travel_both_ways(pair: Pair) -> None:
    # An empty file new on the serving side was listed without its hash, so every pull of it was taken for a file
    # that changed meanwhile and the share never settled.
    p, loop = pair
    (p.remote / "theirs.txt").write_bytes(b"")
    (p.local / "mine.txt").write_bytes(b"")
    assert loop.run_until_complete(p.sync())
    assert tree(p.local) == tree(p.remote) == {"mine.txt": b"", "theirs.txt": b""}


def test_a_small_change_in_a_large_file_sends_only_the_changed_blocks(
    pair: tuple[SyncPair, asyncio.AbstractEventLoop],
) -> None:
    p, loop = pair
    big = os.urandom(8 * 1024 * 1024)
    (p.local / "big.bin").write_bytes(big)
    assert loop.run_until_complete(p.sync())
    sent = p.remote_side.bytes_sent
    changed = bytearray(big)
    changed[3 * 1024 * 1024 : 3 * 1024 * 1024 + 1000] = os.urandom(1000)
    (p.local / "big.bin").write_bytes(bytes(changed))
    assert loop.run_until_complete(p.sync())
    assert (p.remote / "big.bin").read_bytes() == bytes(changed)
    assert p.remote_side.bytes_sent - sent <= 2 * 128 * 1024
    received = p.remote_side.bytes_received
    again = bytearray(changed)
    again[100:200] = os.urandom(100)
    (p.remote / "big.bin").write_bytes(bytes(again))
    assert loop.run_until_complete(p.sync())
    assert (p.local / "big.bin").read_bytes() == bytes(again)
    assert p.remote_side.bytes_received - received <= 128 * 1024


def test_identical_concurrent_edits_and_touches_are_not_conflicts(
    pair: tuple[SyncPair, asyncio.AbstractEventLoop],
) -> None:
    p, loop = pair
    (p.local / "same.txt").write_text("v1")
    assert loop.run_until_complete(p.sync())
    (p.local / "same.txt").write_text("v2")
    (p.remote / "same.txt").write_text("v2")
    os.utime(p.local / "same.txt", (1, 1))
    assert loop.run_until_complete(p.sync())
    os.utime(p.remote / "same.txt", (5, 5))
    assert loop.run_until_complete(p.sync())
    assert tree(p.local) == tree(p.remote) == {"same.txt": b"v2"}


def test_a_delete_beats_nothing_but_a_change_beats_a_delete(pair: tuple[SyncPair, asyncio.AbstractEventLoop]) -> None:
    p, loop = pair
    (p.local / "keep.txt").write_text("old")
    assert loop.run_until_complete(p.sync())
    (p.local / "keep.txt").unlink()
    (p.remote / "keep.txt").write_text("edited there")
    assert loop.run_until_complete(p.sync())
    assert tree(p.local) == tree(p.remote) == {"keep.txt": b"edited there"}


def test_a_mass_delete_pauses_the_share_until_allowed(pair: tuple[SyncPair, asyncio.AbstractEventLoop]) -> None:
    p, loop = pair
    for i in range(20):
        (p.local / f"f{i}.txt").write_text(str(i))
    assert loop.run_until_complete(p.sync())
    for i in range(10):
        (p.local / f"f{i}.txt").unlink()
    assert not loop.run_until_complete(p.sync())
    assert "would delete 10 of 20 files" in p.paused and "--allow-deletes" in p.paused
    assert len(tree(p.remote)) == 20, "nothing was deleted on the other side"
    assert p.engine is not None
    p.engine.set_share(p.share, allow_deletes=True)
    assert loop.run_until_complete(p.sync())
    assert len(tree(p.remote)) == 10
    assert len(list((p.remote / ".nzversions").iterdir())) == 10, "deleted files are kept as versions"


def test_a_vanished_share_root_pauses_instead_of_deleting(pair: tuple[SyncPair, asyncio.AbstractEventLoop]) -> None:
    p, loop = pair
    (p.local / "x.txt").write_text("x")
    assert loop.run_until_complete(p.sync())
    (p.local / "x.txt").unlink()
    p.local.rmdir()
    from noizylab_desktop.services.sync.scanner import RootMissingError

    with pytest.raises(RootMissingError, match="is gone"):
        loop.run_until_complete(p.sync())
    assert tree(p.remote) == {"x.txt": b"x"}


def test_sftp_clients_cannot_leave_the_share_or_make_links(pair: tuple[SyncPair, asyncio.AbstractEventLoop]) -> None:
    import asyncssh

    p, loop = pair
    (p.base / "secret.txt").write_text("outside")
    os.symlink(p.base / "secret.txt", p.remote / "link.txt")

    async def attempts() -> list[str]:
        sftp = await p.remote_side.sftp()
        refused = []
        for path in ("/0123456789ab/../remote/x", "/other/x", "/", "/0123456789ab/link.txt"):
            try:
                await sftp.stat(path)
            except asyncssh.SFTPError as exc:
                refused.append(f"{path}: {exc.reason}")
        try:
            await sftp.symlink("/etc/passwd", "/0123456789ab/evil")
        except asyncssh.SFTPError as exc:
            refused.append(f"symlink: {exc.reason}")
        return refused

    refused = loop.run_until_complete(attempts())
    assert len(refused) == 5, refused
    assert "leads outside the share" in refused[3]
    assert not (p.remote / "evil").exists()


def test_recent_changes_say_what_happened_in_words_not_the_planners_verbs(pair: Pair) -> None:
    p, loop = pair
    (p.local / "mine.txt").write_text("from alpha")
    (p.remote / "theirs.txt").write_text("from beta")
    assert loop.run_until_complete(p.sync())
    (p.local / "mine.txt").unlink()
    (p.remote / "theirs.txt").unlink()
    assert loop.run_until_complete(p.sync())
    assert p.engine is not None
    assert set(p.engine.recent) == {
        "sent mine.txt",
        "received theirs.txt",
        "deleted mine.txt on beta",
        "deleted theirs.txt here",
    }
    changed = [c for e in p.events if isinstance(e, ShareChanged) for c in e.changes]
    assert sorted(changed) == sorted(p.engine.recent), "the tray's recent changes read the same"
