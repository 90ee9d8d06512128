"""Large files between NOIZYLAB peers: a new one is hashed while it streams (not in the scan), a file that changes
while it is sent never becomes visible with mixed content, and the receiver's unbuffered writes land every byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import hash_file
from noizylab_desktop.services.sync.deferred import DEFER_BYTES, must_hash
from noizylab_desktop.services.sync.localfs import temp_name
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.receive import SENT_HASH, FileHeader, receive
from noizylab_desktop.services.sync.scanner import scan
from tests.sync_harness import FolderPeer, Pair, settled, tree

MiB = 1024 * 1024


async def pieces(data: bytes, size: int, trailer: bytes | None) -> AsyncIterator[tuple[int, bytes]]:
    for offset in range(0, len(data), size):
        yield offset, data[offset : offset + size]
    if trailer is not None:
        yield SENT_HASH, trailer


def test_a_large_new_file_is_left_unhashed_by_the_scan_and_recorded_with_its_hashes_once_sent(pair: Pair) -> None:
    p, loop = pair
    data = os.urandom(DEFER_BYTES + 3 * MiB + 777)
    settled(p.local / "take.mov", data)
    first = scan(p.local, p.index, DEFER_BYTES)
    assert first.hashed == 0 and set(first.unhashed) == {"take.mov"}, "the scan did not read the new large file"
    assert loop.run_until_complete(p.sync())
    assert (p.remote / "take.mov").read_bytes() == data
    expected = hash_file(p.local / "take.mov")
    cached = p.index.local_cache()["take.mov"].entry
    assert (cached.hash, cached.blocks) == (expected.digest, expected.blocks), "hashes from the bytes sent"
    assert p.index.ancestor()["take.mov"].hash == expected.digest
    again = scan(p.local, p.index, DEFER_BYTES)
    assert again.hashed == 0 and not again.unhashed, "the next scan reads nothing"
    sent = p.remote_side.bytes_sent
    assert loop.run_until_complete(p.sync())
    assert p.remote_side.bytes_sent == sent, "a second sync does nothing"


def test_a_large_file_that_changes_while_it_is_sent_is_never_visible_mixed_and_ends_up_correct(pair: Pair) -> None:
    p, loop = pair
    old = os.urandom(DEFER_BYTES + 8 * MiB)
    new_tail = os.urandom(4 * MiB)
    settled(p.local / "video.bin", old)
    seen_after_first_try: list[bool] = []

    class Meddling(FolderPeer):
        async def send(self, header: FileHeader, chunks: AsyncIterator[tuple[int, bytes]]) -> tuple[bytes, bytes]:
            async def tapped() -> AsyncIterator[tuple[int, bytes]]:
                async for offset, data in chunks:
                    if offset == 0 and not seen_after_first_try:
                        with open(p.local / "video.bin", "r+b") as f:  # an editor writes while the stream is under way
                            f.seek(len(old) - len(new_tail))
                            f.write(new_tail)
                    yield offset, data

            try:
                return await super().send(header, tapped())
            finally:
                if not seen_after_first_try:
                    seen_after_first_try.append((p.remote / "video.bin").exists())

    p.peer_remote.calls = Meddling(p.remote, p.offer_index)
    assert loop.run_until_complete(p.sync())
    assert seen_after_first_try == [False], "the first, mixed transfer was not made visible"
    final = old[: len(old) - len(new_tail)] + new_tail
    assert (p.local / "video.bin").read_bytes() == final
    assert tree(p.remote) == {"video.bin": final}, "the peer holds the file as it is now, and nothing else"
    assert not (p.remote / ".nzversions").exists(), "no half version was kept either"
    assert p.index.ancestor()["video.bin"].hash == hashlib.sha256(final).digest()


def test_a_renamed_large_file_is_renamed_on_the_peer_not_sent_again(pair: Pair) -> None:
    p, loop = pair
    data = os.urandom(DEFER_BYTES + MiB)
    settled(p.local / "a.bin", data)
    assert loop.run_until_complete(p.sync())
    sent = p.remote_side.bytes_sent
    (p.local / "a.bin").rename(p.local / "b.bin")
    assert loop.run_until_complete(p.sync())
    assert tree(p.remote) == {"b.bin": data}
    assert p.remote_side.bytes_sent - sent < MiB, "found as a rename by its hash, so the content did not travel"


def test_only_deferred_files_the_planner_must_compare_are_hashed_before_planning() -> None:
    def e(path: str, size: int) -> Entry:
        return Entry(path, size, 1, b"h")

    local = {p: e(p, n) for p, n in [("new.bin", 50), ("there.bin", 60), ("Case.bin", 70), ("moved.bin", 80)]}
    unhashed = {p: f"/share/{p}" for p in local}
    there = {"there.bin": e("there.bin", 1), "case.bin": e("case.bin", 1)}
    ancestor = {"there.bin": e("there.bin", 1), "old-name.bin": e("old-name.bin", 80)}
    assert must_hash(unhashed, local, there, ancestor) == ["Case.bin", "moved.bin", "there.bin"]
    assert must_hash({}, local, there, ancestor) == []


def test_a_stream_without_its_trailing_hash_or_with_a_wrong_one_leaves_nothing_visible(tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 3)
    header = FileHeader("x.bin", len(data), b"", 1_700_000_000_000_000_000, False)
    with pytest.raises(SyncError, match="changed while it was sent"):
        asyncio.run(receive(tmp_path, header, pieces(data, 2 * MiB, None)))
    assert not (tmp_path / "x.bin").exists()
    assert (tmp_path / temp_name("x.bin")).stat().st_size == len(data), "kept for a resume"
    with pytest.raises(SyncError, match="did not verify"):
        asyncio.run(receive(tmp_path, header, pieces(data, 2 * MiB, hashlib.sha256(b"other").digest())))
    assert not (tmp_path / "x.bin").exists()
    got = asyncio.run(receive(tmp_path, header, pieces(data, 2 * MiB, hashlib.sha256(data).digest())))
    assert (tmp_path / "x.bin").read_bytes() == data and got.digest == hashlib.sha256(data).digest()


@pytest.mark.parametrize("size", [4096, 1000, 2 * MiB + 512])
def test_chunks_at_any_offset_and_size_land_exactly(tmp_path: Path, size: int) -> None:
    """Aligned chunks go straight to disk, unaligned ones through the page cache: the file is the same either way."""
    data = os.urandom(3 * MiB + 5)
    header = FileHeader("y.bin", len(data), hashlib.sha256(data).digest(), 1_700_000_000_000_000_000, False)
    asyncio.run(receive(tmp_path, header, pieces(data, size, None)))
    assert (tmp_path / "y.bin").read_bytes() == data


def test_a_large_pull_streams_from_the_peer_verified_and_recorded_with_its_hashes(pair: Pair) -> None:
    p, loop = pair
    data = os.urandom(5 * MiB + 321)
    (p.remote / "in").mkdir()
    settled(p.remote / "in" / "clip.mov", data)
    streamed: list[int] = []

    class Counting(FolderPeer):
        async def stream(self, path: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
            async for item in super().stream(path, offset):
                streamed.append(len(item[1]))
                yield item

    p.peer_remote.calls = Counting(p.remote, p.offer_index)
    assert loop.run_until_complete(p.sync())
    assert (p.local / "in" / "clip.mov").read_bytes() == data
    assert sum(streamed) == len(data), "the whole file came over the stream"
    assert scan(p.local, p.index).hashed == 0, "recorded in the scan cache with its hashes as it landed"
    assert not list(p.local.rglob(".nzsync-*"))


def test_a_broken_pull_stream_leaves_nothing_visible_and_the_next_pass_fetches_only_the_rest(pair: Pair) -> None:
    p, loop = pair
    data = os.urandom(8 * MiB)
    settled(p.remote / "big.bin", data)
    broke: list[bool] = []

    class BreakingOnce(FolderPeer):
        async def stream(self, path: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
            async for item in super().stream(path, offset):
                if item[0] >= 4 * MiB and not broke:
                    broke.append((p.local / "big.bin").exists())
                    raise SyncError("lost the connection to beta")
                yield item

    p.peer_remote.calls = BreakingOnce(p.remote, p.offer_index)
    received = p.remote_side.bytes_received
    assert loop.run_until_complete(p.sync())  # the pass that broke, then one that resumes from the temp file
    assert broke == [False], "no partial file at the final path when the stream broke"
    assert (p.local / "big.bin").read_bytes() == data
    assert p.remote_side.bytes_received - received <= len(data) + 128 * 1024, "the first half did not travel again"
    assert not list(p.local.rglob(".nzsync-*"))


def test_a_pulled_file_does_not_replace_a_local_file_made_meanwhile(pair: Pair) -> None:
    p, loop = pair
    theirs = os.urandom(3 * MiB)
    (p.remote / "doc.bin").write_bytes(theirs)

    class Racing(FolderPeer):
        async def stream(self, path: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
            async for item in super().stream(path, offset):
                yield item
            if not (p.local / "doc.bin").exists():
                (p.local / "doc.bin").write_bytes(b"mine, made while the pull was under way")

    p.peer_remote.calls = Racing(p.remote, p.offer_index)
    assert loop.run_until_complete(p.sync())
    mine = b"mine, made while the pull was under way"
    assert sorted(tree(p.local).values()) == sorted([theirs, mine]), "both versions kept: the newer one as a copy"
    assert tree(p.local) == tree(p.remote), "the same on both sides, and no temp file left"
