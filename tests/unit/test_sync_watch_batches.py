"""The watcher hands the loop one batch per quiet window, however many events a burst of writes makes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from noizylab_desktop.services.sync.watcher import Watcher


def test_a_burst_of_writes_arrives_as_a_few_batches_holding_every_path_and_no_temp_file(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    batches: list[set[str]] = []
    watcher = Watcher(tmp_path, loop, batches.append, quiet_s=0.05, cap_s=2.0)
    watcher.start()
    try:
        (tmp_path / "sub").mkdir()
        for i in range(400):
            (tmp_path / "sub" / f".nzsync-{i:016x}.tmp").write_bytes(b"temp")
            (tmp_path / "sub" / f".nzsync-{i:016x}.tmp").rename(tmp_path / "sub" / f"{i}.txt")
        wanted = {f"sub/{i}.txt" for i in range(400)}

        async def until_all_seen() -> None:
            deadline = time.monotonic() + 20
            while not wanted <= set().union(*batches) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # lets the loop run the watcher's callbacks until the deadline

        loop.run_until_complete(until_all_seen())
    finally:
        watcher.stop()
        loop.close()
    seen = set().union(*batches)
    assert wanted <= seen
    assert not [p for p in seen if ".nzsync-" in p], "sync's own temp files are not reported"
    assert len(batches) <= 20, f"{len(batches)} batches for one burst of ~2,000 events"
