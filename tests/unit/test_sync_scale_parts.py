"""Parts made cheaper for home-folder scale: the ignore rules' one-regex path (a share without ``!pattern`` lines)
decides exactly as pathspec does; a watcher's batch is checked against its own rows of the index, not all of it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pathspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noizylab_desktop.services.sync import engine, merging
from noizylab_desktop.services.sync.executor import BATCH_FILE, PARALLEL_LARGE, Executor
from noizylab_desktop.services.sync.ignore import BUILTIN, Ignore
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.planner import Action, Entry
from noizylab_desktop.services.sync.remote import PeerRemote
from noizylab_desktop.services.sync.transfers import action_bytes
from noizylab_desktop.services.sync.trim import TRIM, Trimmer
from tests.slowness import scaled
from tests.sync_harness import Pair, tree

PATTERNS = ["*.log", "build/", "/top.txt", "docs/**/*.pdf", "a?c", "[0-9]*.tmp", "cache", "**/node_modules/", "x/y"]
NAMES = ["a.log", "build", "top.txt", "docs", "n.pdf", "abc", "7.tmp", "cache", "node_modules", "x", "y", "ok",
         ".DS_Store", ".f.swp", "f~", "~$doc.docx", ".nzsync-1.tmp", "Thumbs.db", "keep"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.sampled_from(PATTERNS), max_size=5),
    parts=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4),
    is_dir=st.booleans(),
)
def test_the_fast_path_ignores_exactly_what_pathspec_ignores(lines: list[str], parts: list[str], is_dir: bool) -> None:
    rules = Ignore(lines)
    assert rules._any is not None, "no negation: the one-regex path is taken"
    rel = "/".join(parts)
    spec = pathspec.GitIgnoreSpec.from_lines([*BUILTIN, *lines])
    expected = (
        spec.match_file(rel + "/" if is_dir else rel)
        or rel.startswith(".nzversions")
        or (parts[-1].startswith(".nzsync-") and parts[-1].endswith(".tmp"))
    )
    assert rules.ignored(rel, is_dir) == expected


def test_a_negation_leaves_the_order_to_pathspec() -> None:
    rules = Ignore(["*.log", "!keep.log"])
    assert rules._any is None
    assert rules.ignored("x.log") and not rules.ignored("keep.log") and not rules.ignored("d/keep.log")


def test_the_rows_of_a_watchers_batch_come_from_the_index_and_only_those(tmp_path: Path) -> None:
    index = ShareIndex(tmp_path / "i.sqlite")
    rows = [Cached(Entry(f"d/{i}.txt", i, i * 10, bytes([i % 256]) * 32, b""), 1000 + i) for i in range(1200)]
    index.put_local(rows)
    wanted = {f"d/{i}.txt" for i in range(0, 1200, 2)} | {"missing.txt"}  # more than one query's worth
    got = index.local_cached(wanted)
    assert got == {c.entry.path: c for c in rows if c.entry.path in wanted}
    index.close()


def test_a_pass_settling_many_texts_keeps_every_one_while_holding_only_a_part(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merging, "TEXTS_HELD", 200)  # written to the index every ~200 bytes
    written: list[int] = []
    put = ShareIndex.put_texts

    def counted(self: ShareIndex, texts: Iterable[tuple[bytes, bytes]], prune: bool = True) -> None:
        texts = list(texts)
        written.append(len(texts))
        put(self, texts, prune)

    monkeypatch.setattr(ShareIndex, "put_texts", counted)
    p, loop = pair
    notes = {f"n{i}.txt": f"note {i}\n".encode() * 10 for i in range(20)}  # 80-90 bytes each
    for name, data in notes.items():
        (p.local / name).write_bytes(data)
    assert loop.run_until_complete(p.sync())
    assert all(p.index.text(hashlib.sha256(data).digest()) == data for data in notes.values())
    assert len(written) >= 5 and max(written) <= 3, f"parts of {written} texts"


def test_large_files_move_a_few_at_a_time_while_small_ones_are_not_held_back(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight = {"large": 0, "small": 0}
    most = {"large": 0, "small": 0}
    apply = Executor._apply

    async def counted(self: Executor, action: Action) -> None:
        kind = "large" if action_bytes(action) > BATCH_FILE else "small"
        in_flight[kind] += 1
        most[kind] = max(most[kind], in_flight[kind])
        try:
            await apply(self, action)
        finally:
            in_flight[kind] -= 1

    monkeypatch.setattr(Executor, "_apply", counted)
    p, loop = pair
    for i in range(40):
        (p.local / f"note{i}.txt").write_bytes(b"n" * (i + 1))
    assert loop.run_until_complete(p.sync())
    most["small"] = 0
    for i in range(12):
        (p.local / f"photo{i}.jpg").write_bytes(os.urandom(BATCH_FILE + 1000))
        (p.local / f"note{i}.txt").unlink()  # deletes on the peer: small work, in the same pass
    assert loop.run_until_complete(p.sync()), p.engine and (p.engine.failed, p.engine.message)
    assert sorted(tree(p.local)) == sorted(tree(p.remote)) and len(tree(p.local)) == 40
    assert most["large"] == PARALLEL_LARGE, f"at most {PARALLEL_LARGE} large files at a time, and that many"
    assert most["small"] > PARALLEL_LARGE, "small ones keep their own, wider limit"


def test_a_noizylab_peers_listing_runs_while_this_side_scans(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = threading.Event()
    overlapped: list[bool] = []
    real_scan, real_listing = engine.scan, PeerRemote.listing

    def scan(*args: Any, **kwargs: Any) -> Any:
        overlapped.append(listing.wait(scaled(5)))  # the peer's listing has started meanwhile
        return real_scan(*args, **kwargs)

    async def peers_listing(self: PeerRemote) -> dict[str, Entry]:
        listing.set()
        return await real_listing(self)

    monkeypatch.setattr(engine, "scan", scan)
    monkeypatch.setattr(PeerRemote, "listing", peers_listing)
    p, loop = pair
    (p.local / "a.txt").write_bytes(b"a")
    (p.remote / "b.txt").write_bytes(b"b")
    assert loop.run_until_complete(p.sync())
    assert tree(p.local) == tree(p.remote) == {"a.txt": b"a", "b.txt": b"b"}
    assert overlapped and all(overlapped), "each pass asked the peer for its listing without waiting for its scan"


def test_ancestors_equal_to_the_scan_are_the_scans_own_entries_and_the_rest_are_read(tmp_path: Path) -> None:
    index = ShareIndex(tmp_path / "i.sqlite")
    digest = hashlib.sha256(b"x").digest()
    same, edited = Entry("same.txt", 1, 10, digest, digest), Entry("edited.txt", 1, 10, digest, digest)
    index.set_ancestors([same, edited, Entry("gone.txt", 1, 10, digest, digest)], "a")
    scanned = {
        "same.txt": Entry("same.txt", 1, 10, digest, digest),
        "edited.txt": Entry("edited.txt", 2, 11, b"y" * 32),
    }
    got = index.ancestor(scanned)
    assert got == {"same.txt": same, "edited.txt": edited, "gone.txt": Entry("gone.txt", 1, 10, digest, digest)}
    assert got["same.txt"] is scanned["same.txt"], "one object for a file in sync"
    assert got["edited.txt"].size == 1 and got["edited.txt"] is not scanned["edited.txt"]
    assert got["gone.txt"].blocks is got["gone.txt"].hash, "a one-block file's blocks are its hash: one object"
    assert index.ancestor() == got
    index.close()


def test_the_heap_is_trimmed_once_after_a_burst_of_passes_and_calls_goes_quiet() -> None:
    trims: list[float] = []

    async def burst() -> float:
        trimmer = Trimmer(lambda: trims.append(time.monotonic()), quiet_s=0.2)
        last = 0.0
        for _ in range(5):
            trimmer.soon()
            last = time.monotonic()
            await asyncio.sleep(0.05)  # a burst of passes and served calls, closer together than the quiet window
        deadline = last + scaled(5)
        while not trims and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # polls for the trim, with a deadline
        await asyncio.sleep(0.3)  # and a further window in which no second trim may come
        return last

    last = asyncio.run(burst())
    assert len(trims) == 1 and trims[0] >= last + 0.19, "one trim, a quiet window after the last call"
    assert TRIM is not None if sys.platform.startswith("linux") else True, "glibc's malloc_trim is found on Linux"
