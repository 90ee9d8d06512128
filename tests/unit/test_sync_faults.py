"""Faults: a full disk (SFTP and streamed pulls, batches), a dropped connection, and editors' save patterns; never a
partial file at a final path."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from noizylab_desktop.services.sync.localfs import LocalFs
from noizylab_desktop.services.sync.remote import RemoteUnreachable
from tests.sync_harness import SyncPair, tree


class FaultyFs(LocalFs):
    """The local filesystem, but ``hook(written_so_far)`` runs before each write (and may raise)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written = 0
        self.hook: Callable[[int], None] = lambda n: None

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        self.hook(self.written)
        super().pwrite(fd, data, offset)
        self.written += len(data)

    def direct(self, path: Path, chunk: int) -> None:
        return None  # every write goes through pwrite, where the faults are


Run = Callable[..., object]


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[SyncPair, FaultyFs, Run]]:
    loop = asyncio.new_event_loop()
    fs = FaultyFs(tmp_path / "local")
    p = SyncPair(tmp_path, fs=fs, pull_streams=False)  # the faults are injected into the SFTP pulls and writes
    loop.run_until_complete(p.start())
    yield p, fs, loop.run_until_complete
    loop.run_until_complete(p.close())
    loop.close()


def visible_partials(root: Path, good: dict[str, bytes]) -> list[str]:
    """Visible files whose content is neither absent nor one of the complete versions."""
    return [rel for rel, data in tree(root).items() if rel in good and data != good[rel] and ".nzsync-" not in rel]


def test_a_full_disk_leaves_the_old_file_whole_and_the_transfer_resumes(
    faulty: tuple[SyncPair, FaultyFs, Run],
) -> None:
    p, fs, run = faulty
    old = os.urandom(3 * 1024 * 1024)
    (p.remote / "video.bin").write_bytes(old)
    assert run(p.sync())
    new = os.urandom(3 * 1024 * 1024)
    (p.remote / "video.bin").write_bytes(new)
    fs.written = 0

    def disk_full(written: int) -> None:
        if written >= 1024 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")

    fs.hook = disk_full
    assert not run(p.sync())
    assert p.engine is not None and "disk full" in p.engine.message
    assert (p.local / "video.bin").read_bytes() == old, "the final path still holds the whole old file"
    fetched = p.remote_side.bytes_received
    fs.hook = lambda n: None
    assert run(p.sync())
    assert (p.local / "video.bin").read_bytes() == new
    resumed = p.remote_side.bytes_received - fetched
    assert resumed < 2.5 * 1024 * 1024, f"the retry fetched {resumed} bytes: it resumed from the temp file"


def test_a_disk_filling_during_a_streamed_pull_leaves_nothing_visible_and_the_next_pass_resumes(
    tmp_path: Path,
) -> None:
    loop = asyncio.new_event_loop()
    fs = FaultyFs(tmp_path / "local")
    p = SyncPair(tmp_path, fs=fs)  # large pulls stream over gRPC (Sync.GetStream), as between nodes
    loop.run_until_complete(p.start())
    try:
        data = os.urandom(5 * 1024 * 1024)
        (p.remote / "take.mov").write_bytes(data)

        def disk_full(written: int) -> None:
            if written >= 2 * 1024 * 1024:
                raise OSError(errno.ENOSPC, "No space left on device")

        fs.hook = disk_full
        assert not loop.run_until_complete(p.sync())
        assert p.engine is not None and "disk full in " in p.engine.message
        assert not (p.local / "take.mov").exists(), "nothing at the final path"
        fetched = p.remote_side.bytes_received
        fs.hook = lambda n: None
        assert loop.run_until_complete(p.sync())
        assert (p.local / "take.mov").read_bytes() == data
        resumed = p.remote_side.bytes_received - fetched
        assert resumed < 4 * 1024 * 1024, f"the retry fetched {resumed} bytes: it resumed from the temp file"
        assert not list(p.local.rglob(".nzsync-*")), "no temp file left"
    finally:
        loop.run_until_complete(p.close())
        loop.close()


def test_a_disk_filling_during_a_batch_of_small_files_loses_nothing_and_the_rest_follows(
    faulty: tuple[SyncPair, FaultyFs, Run],
) -> None:
    p, fs, run = faulty
    good = {f"notes/n{i:03}.txt": os.urandom(3000) for i in range(60)}
    for rel, data in good.items():
        (p.remote / rel).parent.mkdir(exist_ok=True)
        (p.remote / rel).write_bytes(data)
    fs.written = 0

    def disk_full(written: int) -> None:
        if written >= 20 * 3000:
            raise OSError(errno.ENOSPC, "No space left on device")

    fs.hook = disk_full
    assert not run(p.sync())
    assert p.engine is not None and p.engine.state == "error"
    assert "disk full in " in p.engine.message and "retrying in 2 s" in p.engine.message
    landed = {rel: data for rel, data in tree(p.local).items() if rel in good}
    assert len(landed) == 20, "the files written before the disk filled landed, the others did not"
    assert not visible_partials(p.local, good)
    fs.hook = lambda n: None
    assert run(p.sync())
    assert {rel: data for rel, data in tree(p.local).items() if not rel.startswith(".")} == good


def test_a_dropped_connection_mid_transfer_resumes_without_a_partial_file(
    faulty: tuple[SyncPair, FaultyFs, Run],
) -> None:
    p, fs, run = faulty
    files = {f"many/{i:03}.dat": os.urandom(20_000) for i in range(150)}
    files["big.bin"] = os.urandom(6 * 1024 * 1024)
    for rel, data in files.items():
        (p.remote / rel).parent.mkdir(parents=True, exist_ok=True)
        (p.remote / rel).write_bytes(data)
    at_drop: list[tuple[list[str], int, int]] = []

    lock = threading.Lock()
    loop = run.__self__  # type: ignore[attr-defined]

    over_sftp: list[int] = []  # what had been written when the first write over SFTP came

    def drop(written: int) -> None:
        with lock:  # writes run on several worker threads
            conn = p.remote_side._conn
            if conn is None:
                return  # a batch of small files, fetched over the peer's own call rather than SFTP
            over_sftp[:] = over_sftp or [written]
            if written >= over_sftp[0] + 2 * 1024 * 1024 and not at_drop:
                loop.call_soon_threadsafe(conn.abort)
                at_drop.append((visible_partials(p.local, files), written, p.remote_side.bytes_received))

    fs.hook = drop
    # The pass that lost its connection stops at once; the engine's next pass reconnects and resumes.
    with pytest.raises(RemoteUnreachable, match="lost the connection to beta"):
        run(p.sync())
    ((partials, written, received),) = at_drop
    assert partials == [], "no partial file at a final path when the connection dropped"
    received_before = p.remote_side.bytes_received
    assert run(p.sync())
    assert tree(p.local) == tree(p.remote) == files
    total = sum(len(d) for d in files.values())
    again = p.remote_side.bytes_received - received_before
    assert again <= total - written + 1024 * 1024, "what was written before the drop did not travel again"


def test_pushes_verify_on_the_peer_and_resume_into_their_temp_file(
    faulty: tuple[SyncPair, FaultyFs, Run],
) -> None:
    p, _, run = faulty
    data = os.urandom(4 * 1024 * 1024)
    (p.local / "up.bin").write_bytes(data)

    # What an interrupted push leaves on the peer: the first half of the file in its temp file.
    async def half_then_drop() -> None:
        sftp = await p.remote_side.sftp()
        from noizylab_desktop.services.sync.localfs import temp_name

        tmp = temp_name("up.bin")
        async with sftp.open(f"/0123456789ab/{tmp}", "wb") as f:
            await f.write(data[: 2 * 1024 * 1024])

    run(half_then_drop())
    sent = p.remote_side.bytes_sent
    assert run(p.sync())
    assert (p.remote / "up.bin").read_bytes() == data
    assert p.remote_side.bytes_sent - sent <= 2 * 1024 * 1024 + 128 * 1024, "only the missing half travelled"
    assert not [q for q in p.remote.rglob(".nzsync-*")]


SAVES: dict[str, Callable[[Path, bytes], None]] = {}


def save(name: str) -> Callable[[Callable[[Path, bytes], None]], Callable[[Path, bytes], None]]:
    def register(fn: Callable[[Path, bytes], None]) -> Callable[[Path, bytes], None]:
        SAVES[name] = fn
        return fn

    return register


@save("vim")
def _vim(path: Path, data: bytes) -> None:
    swap = path.with_name(f".{path.name}.swp")
    swap.write_bytes(b"swap")
    os.replace(path, path.with_name(path.name + "~"))  # backup by rename, then write a new file
    path.write_bytes(data)
    path.with_name(path.name + "~").unlink()
    swap.unlink()


@save("vscode")
def _vscode(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:  # truncate and write in place
        f.truncate(0)
        f.write(data)


@save("jetbrains")
def _jetbrains(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    tmp.write_bytes(data)
    os.replace(path, old)
    os.replace(tmp, path)
    old.unlink()


@save("office")
def _office(path: Path, data: bytes) -> None:
    lock = path.with_name("~$" + path.name)
    lock.write_bytes(b"owner")
    tmp = path.with_name("~WRL0001.tmp")
    os.replace(path, tmp)
    path.write_bytes(data)
    tmp.unlink()
    lock.unlink()


@save("macos-safe-save")
def _safe_save(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.sb-4f2a-XXXX")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.mark.parametrize("editor", sorted(SAVES))
def test_editor_save_patterns_make_no_spurious_conflicts(faulty: tuple[SyncPair, FaultyFs, Run], editor: str) -> None:
    p, _, run = faulty
    doc = p.local / "report.docx"
    doc.write_bytes(b"draft 0")
    assert run(p.sync())
    for n in range(1, 4):
        SAVES[editor](doc, f"draft {n}".encode())
        assert run(p.sync())
        # The other side's user edits the synced result too, as people on two machines do.
        SAVES[editor](p.remote / "report.docx", f"draft {n} reviewed".encode())
        assert run(p.sync())
    assert tree(p.local) == tree(p.remote) == {"report.docx": b"draft 3 reviewed"}
    assert p.engine is not None and p.engine.conflicts == 0
