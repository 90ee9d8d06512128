"""Many small pushes to a NOIZYLAB peer: a small first batch, then full ones, never more than two calls in flight,
and every file whole on the other side."""

from __future__ import annotations

import asyncio
import os

from noizylab_desktop.services.sync.executor import BATCH_FILES, FIRST_BATCH_FILES
from tests.sync_harness import Pair, tree


def test_many_small_pushes_go_in_batches_two_at_a_time_and_all_land_whole(pair: Pair) -> None:
    p, loop = pair
    files = {f"many/d{i // 500}/f{i}.txt": os.urandom(64 + i % 100) for i in range(BATCH_FILES + 150)}
    for rel, data in files.items():
        (p.local / rel).parent.mkdir(parents=True, exist_ok=True)
        (p.local / rel).write_bytes(data)
    assert p.remote_side.peer_put is not None
    put = p.remote_side.peer_put
    sizes: list[int] = []
    in_flight, most = 0, 0

    async def counting_put(batch: list[tuple[str, bytes, bytes, int]]) -> dict[str, str]:
        nonlocal in_flight, most
        sizes.append(len(batch))
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0)  # lets another batch start meanwhile, as the peer's call would
            return await put(batch)
        finally:
            in_flight -= 1

    p.remote_side.peer_put = counting_put
    assert loop.run_until_complete(p.sync())
    assert tree(p.remote) == tree(p.local) == files
    assert not list(p.remote.rglob(".nzsync-*")), "no temp file left on the peer"
    assert sizes[0] == FIRST_BATCH_FILES, "the peer starts writing after a small first batch"
    assert max(sizes) == BATCH_FILES and sum(sizes) == len(files)
    assert most == 2, "two calls in flight: one written there while the next travels"
