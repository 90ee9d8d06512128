"""A served folder's watcher (its Watch stream) does not report the files its peer's sync lands there, but does
report what this node's own engine lands there (a share driven onward from the same folder) and users' changes."""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyConstants

from noizylab_desktop.services.sync.blocks import hash_bytes
from noizylab_desktop.services.sync.landings import Landings
from noizylab_desktop.services.sync.localfs import LocalFs, write_files
from tests.slowness import scaled

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inotify observer is Linux's")

FROM, TO, CREATE = InotifyConstants.IN_MOVED_FROM, InotifyConstants.IN_MOVED_TO, InotifyConstants.IN_CREATE
TEMP = b".nzsync-00ff00ff00ff00ff.tmp"


def raw(wd: int, mask: int, cookie: int, name: bytes) -> bytes:
    padded = name + b"\0" * (-len(name) % 8 or 8)
    return struct.pack("iIII", wd, mask, cookie, len(padded)) + padded


def test_a_move_from_a_temp_file_is_dropped_even_across_reads_and_other_moves_stay() -> None:
    from noizylab_desktop.services.sync.inotify import parse_events

    landings: dict[int, None] = {}
    first = raw(1, CREATE, 0, TEMP) + raw(1, FROM, 5, TEMP) + raw(1, FROM, 6, b"old.txt") + raw(1, FROM, 8, TEMP)
    second = raw(1, TO, 5, b"landed.txt") + raw(1, TO, 6, b"new.txt") + raw(1, TO, 9, b"came-in.txt")
    third = raw(1, TO, 8, b"late.txt")
    got = [(e.mask, e.cookie, e.name) for buffer in (first, second, third) for e in parse_events(buffer, landings)]
    assert got == [(FROM, 6, b"old.txt"), (TO, 6, b"new.txt"), (TO, 9, b"came-in.txt")]
    assert landings == {}, "each remembered cookie leaves with its other half"
    # Without landings (every other watcher), the move onto the final name is reported, as before.
    plain = [e.name for e in parse_events(first + second)]
    assert b"landed.txt" in plain and TEMP not in plain


def files(names: list[str]) -> list[tuple[str, bytes, bytes, int]]:
    return [(n, n.encode(), hash_bytes(n.encode()).digest, time.time_ns()) for n in names]


def test_a_served_folders_watcher_skips_the_peers_landings_but_hears_its_own_engines_and_users(tmp_path: Path) -> None:
    from noizylab_desktop.services.sync.watcher import Watcher

    root = tmp_path / "served"
    root.mkdir()
    (root / "old.txt").write_text("o")
    loop = asyncio.new_event_loop()
    batches: list[set[str]] = []
    landings = Landings()
    watcher = Watcher(root, loop, batches.append, quiet_s=0.05, cap_s=2.0, drop_landings=True)
    watcher.start()
    unsubscribe = landings.subscribe(str(root), watcher.saw_many)
    try:
        peers = [f"peer/{i}.txt" for i in range(300)]
        assert write_files(root, files(peers), None) == {}  # as Sync.PutFiles lands a peer's batch
        engines = LocalFs(root, landings.landed)  # this node's engine driving the same folder onward
        assert write_files(root, files(["onward/pulled.txt"]), None, engines) == {}
        (root / "user.txt").write_text("u")
        (root / "old.txt").rename(root / "renamed.txt")
        wanted = {"onward/pulled.txt", "user.txt", "old.txt", "renamed.txt"}

        async def until_seen() -> None:
            deadline = time.monotonic() + scaled(20)
            while not wanted <= set().union(*batches) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # lets the loop run the watcher's callbacks until the deadline

        loop.run_until_complete(until_seen())
    finally:
        unsubscribe()
        watcher.stop()
        loop.close()
    seen = set().union(*batches)
    assert wanted <= seen
    # Events come in order: the peer's landings came before the user's file, which was seen.
    assert not [p for p in seen if p.startswith("peer/")], "the peer's own landings are not reported back to it"
    assert len(list((root / "peer").iterdir())) == 300


def test_landings_reach_only_the_watchers_of_folders_holding_them(tmp_path: Path) -> None:
    landings = Landings()
    told: list[list[str]] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "ab").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    unsubscribe = landings.subscribe(str(tmp_path / "a"), told.append)
    LocalFs(tmp_path / "link", landings.landed).landed([str(tmp_path / "link" / "x")])  # a share named via a link
    landings.landed([str(tmp_path / "ab" / "y")])  # a folder whose name only starts the same
    unsubscribe()
    landings.landed([str(tmp_path / "a" / "z")])
    assert told == [[str(tmp_path / "a" / "x")]]
