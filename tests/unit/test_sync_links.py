"""Links and paths that leave a share (issue 4, item 7), end to end through the engine and the real SFTP server:
links are never followed out of a share, on either side and for either direction; ``..`` and absolute paths from
a peer are refused; and the watcher's inotify fallback is shown in the share's status."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync import watcher as watcher_mod
from noizylab_desktop.services.sync.blocks import hash_bytes
from noizylab_desktop.services.sync.localfs import write_files
from noizylab_desktop.services.sync.planner import Entry
from tests.sync_harness import FolderPeer, SyncPair, tree


def _outside(base: Path) -> Path:
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not to be synced or touched")
    return outside


def test_links_in_a_share_are_never_followed_out_of_it(pair: tuple[SyncPair, asyncio.AbstractEventLoop]) -> None:
    p, loop = pair
    outside = _outside(p.base)
    os.symlink(outside, p.local / "out")  # a folder link and a file link on the driving side
    os.symlink(outside / "secret.txt", p.local / "secret.txt")
    (p.remote / "out").mkdir()
    (p.remote / "out" / "planted.txt").write_text("would land outside through the link")
    (p.remote / "secret.txt").write_text("would overwrite the file the link points at")
    (p.remote / "fine.txt").write_text("fine")
    assert not loop.run_until_complete(p.sync())
    assert p.engine is not None
    assert set(p.engine.failed) == {"out/planted.txt", "secret.txt"}
    assert all("leads outside the share" in why for why in p.engine.failed.values())
    assert sorted(q.name for q in outside.iterdir()) == ["secret.txt"], "nothing written outside"
    assert (outside / "secret.txt").read_text() == "not to be synced or touched"
    assert (p.local / "fine.txt").read_text() == "fine", "the rest synced"
    assert b"not to be synced or touched" not in tree(p.remote).values(), "links are not sent either"


def test_paths_from_a_peer_that_leave_the_share_are_refused(pair: tuple[SyncPair, asyncio.AbstractEventLoop]) -> None:
    p, loop = pair
    outside = _outside(p.base)
    os.symlink(outside, p.remote / "out")

    class Hostile(FolderPeer):
        async def index(self) -> AsyncIterator[list[Entry]]:
            yield [Entry("../escape.txt", 1, 1, hash_bytes(b"x").digest)]

    p.peer_remote.calls = Hostile(p.remote, p.offer_index)
    with pytest.raises(SyncError, match="refused a path that leaves"):
        loop.run_until_complete(p.sync())

    # What a peer receives in PutFiles: every path that leaves its share fails alone; nothing lands outside.
    data = b"planted"
    digest = hash_bytes(data).digest
    files = [(rel, data, digest, 1) for rel in ("../escape.txt", "/tmp/abs.txt", "out/planted.txt", "ok.txt")]
    failed = write_files(p.remote, files)
    assert set(failed) == {"../escape.txt", "/tmp/abs.txt", "out/planted.txt"}
    assert sorted(q.name for q in outside.iterdir()) == ["secret.txt"] and not (p.base / "escape.txt").exists()
    assert (p.remote / "ok.txt").read_bytes() == data


def test_running_out_of_inotify_watches_is_shown_in_the_share_status(
    pair: tuple[SyncPair, asyncio.AbstractEventLoop], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Exhausted(watcher_mod.Observer):  # type: ignore[misc, valid-type]
        def schedule(self, *args: object, **kwargs: object) -> object:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher_mod, "Observer", Exhausted)
    p, loop = pair
    (p.local / "a.txt").write_text("a")
    assert p.engine is not None
    engine = p.engine

    async def started_and_clean() -> None:
        engine.start()
        await asyncio.wait_for(engine.wait_clean(engine.request()), 30)

    loop.run_until_complete(started_and_clean())
    assert engine.state == "idle" and "fs.inotify.max_user_watches" in engine.message, engine.message
    assert tree(p.remote) == {"a.txt": b"a"}


def test_files_that_keep_failing_are_retried_less_and_less_often(
    pair: tuple[SyncPair, asyncio.AbstractEventLoop],
) -> None:
    p, loop = pair
    outside = _outside(p.base)
    os.symlink(outside / "secret.txt", p.local / "secret.txt")
    (p.remote / "secret.txt").write_text("would overwrite the file the link points at")
    waits = []
    for _ in range(7):
        assert not loop.run_until_complete(p.sync())
        assert p.engine is not None and p.engine.state == "error"
        assert p.engine.message.startswith("1 file not synced; secret.txt: ")
        waits.append(p.engine.message.rsplit("retrying in ", 1)[1])
    assert waits == ["2 s", "4 s", "8 s", "16 s", "32 s", "60 s", "60 s"]

    (p.remote / "secret.txt").unlink()  # the cause goes: the share is in sync, and the next failure starts afresh
    os.unlink(p.local / "secret.txt")
    assert loop.run_until_complete(p.sync())
    (p.remote / "secret.txt").write_text("again")
    os.symlink(outside / "secret.txt", p.local / "secret.txt")
    assert not loop.run_until_complete(p.sync())
    assert p.engine.message.endswith("retrying in 2 s")
