"""The fast paths between NOIZYLAB nodes: whole files streamed to the peer (hashed while written, durable, verified,
then renamed) and batches of small files; a bad chunk or file is refused and nothing half-made becomes visible."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.executor import Executor, Progress
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, temp_name, write_files
from noizylab_desktop.services.sync.planner import plan
from noizylab_desktop.services.sync.receive import CHUNK, FileHeader, receive
from noizylab_desktop.services.sync.scanner import scan
from tests.sync_harness import Pair, tree


async def chunks_of(data: bytes, stop_after: int | None = None) -> AsyncIterator[tuple[int, bytes]]:
    """``data`` in stream chunks; ``stop_after`` bytes, then the stream breaks as a dropped connection would."""
    for offset in range(0, len(data), CHUNK):
        if stop_after is not None and offset >= stop_after:
            raise ConnectionResetError("the stream broke")
        yield offset, data[offset : offset + CHUNK]


def header(rel: str, data: bytes, keep: bool = False) -> FileHeader:
    return FileHeader(rel, len(data), hashlib.sha256(data).digest(), 1_700_000_000_000_000_000, keep)


def test_a_large_push_streams_to_the_peer_and_its_next_scan_hashes_nothing(pair: Pair) -> None:
    p, loop = pair
    data = os.urandom(9 * 1024 * 1024 + 12345)
    (p.local / "films").mkdir()
    (p.local / "films" / "take.mov").write_bytes(data)
    assert loop.run_until_complete(p.sync())
    assert (p.remote / "films" / "take.mov").read_bytes() == data
    assert (p.remote / "films" / "take.mov").stat().st_mtime_ns == (p.local / "films" / "take.mov").stat().st_mtime_ns
    assert not list(p.remote.rglob(".nzsync-*")), "no temp file left behind"
    assert p.remote_side.bytes_sent >= len(data)
    # The receiver recorded the file with its hashes, so the serving side's next scan reads nothing again.
    assert scan(p.remote, p.offer_index).hashed == 0


def test_a_replaced_file_goes_to_versions_when_the_stream_lands(pair: Pair) -> None:
    p, loop = pair
    old, new = os.urandom(3 * 1024 * 1024), os.urandom(3 * 1024 * 1024)
    (p.local / "a.bin").write_bytes(old)
    assert loop.run_until_complete(p.sync())
    (p.local / "a.bin").write_bytes(new)
    assert loop.run_until_complete(p.sync())
    assert (p.remote / "a.bin").read_bytes() == new
    assert [q.read_bytes() for q in (p.remote / ".nzversions").rglob("*") if q.is_file()] == [old]


def test_a_corrupted_chunk_is_refused_and_nothing_becomes_visible(tmp_path: Path) -> None:
    (tmp_path / "clip.bin").write_bytes(b"the old version")
    data = os.urandom(5 * 1024 * 1024)
    corrupted = bytearray(data)
    corrupted[CHUNK + 7] ^= 0xFF  # one bit flipped in the second chunk
    with pytest.raises(SyncError, match="clip.bin did not verify"):
        asyncio.run(receive(tmp_path, header("clip.bin", data), chunks_of(bytes(corrupted))))
    assert (tmp_path / "clip.bin").read_bytes() == b"the old version"
    assert not (tmp_path / temp_name("clip.bin")).exists(), "the bad temp file is gone"


def test_a_chunk_past_the_announced_size_is_refused(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    with pytest.raises(SyncError, match="runs past the announced size"):
        asyncio.run(receive(tmp_path, header("x.bin", data[:1000]), chunks_of(data)))
    assert not (tmp_path / "x.bin").exists()


@pytest.mark.parametrize("rel", ["../out.bin", "/etc/out.bin", "a/../../out.bin"])
def test_a_stream_to_a_path_outside_the_share_is_refused(tmp_path: Path, rel: str) -> None:
    share = tmp_path / "share"
    share.mkdir()
    with pytest.raises(SyncError):
        asyncio.run(receive(share, header(rel, b"x"), chunks_of(b"x")))
    assert sorted(q.name for q in tmp_path.rglob("*")) == ["share"]


def test_a_push_cancelled_while_its_stream_fails_logs_no_stray_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gRPC edge ends a stream holding a bad chunk by cancelling the handler while the stream's own error unwinds
    it: the workers' cancel once surfaced as asyncio's "exception was never retrieved" with a traceback."""

    async def main() -> None:
        task: asyncio.Task[object] | None = None

        async def chunks() -> AsyncIterator[tuple[int, bytes]]:
            yield 0, b"x" * 10
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)
            raise ConnectionResetError("the stream broke")

        task = asyncio.create_task(receive(tmp_path, header("a.bin", b"x" * 100), chunks()))
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()
    assert [r.getMessage() for r in caplog.records] == []


def test_a_broken_stream_leaves_the_old_file_whole_and_the_next_push_sends_only_what_is_missing(pair: Pair) -> None:
    p, loop = pair
    (p.remote / "video.bin").write_bytes(b"old")
    data = os.urandom(6 * CHUNK)
    with pytest.raises(ConnectionResetError):
        loop.run_until_complete(receive(p.remote, header("video.bin", data), chunks_of(data, stop_after=3 * CHUNK)))
    assert (p.remote / "video.bin").read_bytes() == b"old", "the final path still holds the whole old file"
    assert (p.remote / temp_name("video.bin")).stat().st_size == 3 * CHUNK, "what arrived is kept for the resume"
    (p.local / "video.bin").write_bytes(data)
    os.utime(p.local / "video.bin", ns=(time.time_ns() + 5_000_000_000,) * 2)  # the newer side wins
    sent = p.remote_side.bytes_sent
    assert loop.run_until_complete(p.sync())
    assert (p.remote / "video.bin").read_bytes() == data
    assert p.remote_side.bytes_sent - sent <= len(data) - 3 * CHUNK + 128 * 1024, "the received half did not travel"
    assert not list(p.remote.rglob(".nzsync-*"))


def test_a_batch_of_small_files_lands_except_the_bad_ones_each_with_a_one_line_reason(tmp_path: Path) -> None:
    root = tmp_path / "share"
    (root / "docs").mkdir(parents=True)
    os.symlink("/etc/hostname", root / "docs" / "link.txt")
    index = ShareIndex(tmp_path / "offer.sqlite")
    good = {f"docs/{i}.txt": os.urandom(100 + i) for i in range(50)}
    files = [(rel, data, hashlib.sha256(data).digest(), 1_700_000_000_000_000_000) for rel, data in good.items()]
    files.append(("docs/bad.txt", b"what arrived", hashlib.sha256(b"what was sent").digest(), 0))
    files.append(("docs/link.txt", b"over a link", hashlib.sha256(b"over a link").digest(), 0))
    files.append(("../escape.txt", b"out", hashlib.sha256(b"out").digest(), 0))
    failed = write_files(root, files, index)
    assert set(failed) == {"docs/bad.txt", "docs/link.txt", "../escape.txt"}
    assert all(len(why.splitlines()) == 1 and why for why in failed.values())
    assert "did not verify" in failed["docs/bad.txt"]
    assert "link" in failed["docs/link.txt"]
    assert {rel: data for rel, data in tree(root).items() if rel != "docs/link.txt"} == good
    assert os.readlink(root / "docs" / "link.txt") == "/etc/hostname", "the link was not replaced"
    assert not list(root.rglob(".nzsync-*")) and not (tmp_path / "escape.txt").exists()
    assert scan(root, index).hashed == 0, "the landed files are in the scan cache"
    index.close()


def test_many_small_pulls_come_in_batches_and_a_file_gone_meanwhile_fails_alone(pair: Pair) -> None:
    p, loop = pair
    files = {f"inbox/{i // 50}/{i}.txt": os.urandom(300 + i) for i in range(300)}
    for rel, data in files.items():
        (p.remote / rel).parent.mkdir(parents=True, exist_ok=True)
        (p.remote / rel).write_bytes(data)

    async def one_pass_while_a_file_goes() -> Progress:
        scanned = await asyncio.to_thread(scan, p.local, p.index)
        decided = plan(scanned.entries, await p.remote_side.listing(), p.index.ancestor(), "alpha", "beta")
        (p.remote / "inbox/3/150.txt").unlink()  # deleted on the peer after the plan was made
        return await Executor(LocalFs(p.local), p.index, p.remote_side, "alpha").run(decided)

    progress = loop.run_until_complete(one_pass_while_a_file_goes())
    assert progress.failed == {"inbox/3/150.txt": "inbox/3/150.txt is gone"}
    del files["inbox/3/150.txt"]
    assert tree(p.local) == files, "every other file landed, each whole"
    assert p.remote_side._conn is None, "no SFTP round trip per file: the batch came over the peer's call"
    assert not list(p.local.rglob(".nzsync-*"))
    received = p.remote_side.bytes_received
    assert loop.run_until_complete(p.sync())
    assert tree(p.local) == tree(p.remote) == files
    assert p.remote_side.bytes_received == received, "the files that landed were recorded as synced"
