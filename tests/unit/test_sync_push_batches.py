"""Many small pushes to a NOIZYLAB peer: a small first batch, then full ones, never more than two calls in flight,
and every file whole on the other side; new files hashed as the batch reads them, not by the scan before."""

from __future__ import annotations

import asyncio
import hashlib
import os

from noizylab_desktop.services.sync.batches import BATCH_FILE, BATCH_FILES, FIRST_BATCH_FILES
from noizylab_desktop.services.sync.deferred import read_for_push
from noizylab_desktop.services.sync.localfs import LocalFs
from noizylab_desktop.services.sync.planner import Action
from noizylab_desktop.services.sync.scanner import scan
from tests.sync_harness import FolderPeer, Pair, settled, tree


def test_many_small_pushes_go_in_batches_two_at_a_time_and_all_land_whole(pair: Pair) -> None:
    p, loop = pair
    files = {f"many/d{i // 500}/f{i}.txt": os.urandom(64 + i % 100) for i in range(BATCH_FILES + 150)}
    for rel, data in files.items():
        (p.local / rel).parent.mkdir(parents=True, exist_ok=True)
        (p.local / rel).write_bytes(data)
    sizes: list[int] = []
    in_flight, most = 0, 0

    class CountingPuts(FolderPeer):
        async def put(self, files: list[tuple[str, bytes, bytes, int]]) -> dict[str, str]:
            nonlocal in_flight, most
            sizes.append(len(files))
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(0)  # lets another batch start meanwhile, as the peer's call would
                return await super().put(files)
            finally:
                in_flight -= 1

    p.peer_remote.calls = CountingPuts(p.remote, p.offer_index)
    assert loop.run_until_complete(p.sync())
    assert tree(p.remote) == tree(p.local) == files
    assert not list(p.remote.rglob(".nzsync-*")), "no temp file left on the peer"
    assert sizes[0] == FIRST_BATCH_FILES, "the peer starts writing after a small first batch"
    assert max(sizes) == BATCH_FILES and sum(sizes) == len(files)
    assert most == 2, "two calls in flight: one written there while the next travels"


def test_a_small_new_file_is_hashed_as_its_batch_reads_it_not_by_the_scan(pair: Pair) -> None:
    p, loop = pair
    data = b"line one\nline two\n"
    settled(p.local / "notes.txt", data)
    first = scan(p.local, p.index, 0, BATCH_FILE)
    assert first.hashed == 0 and set(first.unhashed) == {"notes.txt"}, "the scan did not read the new file"
    assert loop.run_until_complete(p.sync())
    assert (p.remote / "notes.txt").read_bytes() == data
    digest = hashlib.sha256(data).digest()
    cached = p.index.local_cache()["notes.txt"].entry
    assert (cached.hash, cached.blocks) == (digest, digest), "hashes from the bytes sent"
    assert p.index.ancestor()["notes.txt"].hash == digest
    assert p.index.text(digest) == data, "its text is kept as the ancestor for a later three-way merge"
    again = scan(p.local, p.index, 0, BATCH_FILE)
    assert again.hashed == 0 and not again.unhashed, "the next scan reads nothing"
    sent = p.remote_side.bytes_sent
    assert loop.run_until_complete(p.sync())
    assert p.remote_side.bytes_sent == sent, "a second sync does nothing"


def test_a_small_new_file_that_changed_since_the_scan_waits_for_the_next_pass(pair: Pair) -> None:
    p, _ = pair
    settled(p.local / "a.txt", b"as scanned")
    settled(p.local / "b.txt", b"as scanned")
    scanned = scan(p.local, p.index, 0, BATCH_FILE)
    settled(p.local / "b.txt", b"longer than when it was scanned")
    (p.local / "a.txt").write_bytes(b"as scanned")  # same size, new mtime: a write just now
    actions = [Action("push", rel, local=scanned.entries[rel]) for rel in ("a.txt", "b.txt")]
    assert read_for_push(LocalFs(p.local), p.index, actions) == [], "neither is sent on the scan's word"
    rescanned = scan(p.local, p.index, 0, BATCH_FILE)
    fresh = [Action("push", rel, local=rescanned.entries[rel]) for rel in ("a.txt", "b.txt")]
    read = read_for_push(LocalFs(p.local), p.index, fresh)
    assert [(a.local.hash if a.local else b"", f[1]) for a, f in read] == [
        (hashlib.sha256(b"as scanned").digest(), b"as scanned"),
        (hashlib.sha256(b"longer than when it was scanned").digest(), b"longer than when it was scanned"),
    ]
    assert set(p.index.local_cache()) == {"b.txt"}, "a.txt, written just now, is hashed again by the next scan"
