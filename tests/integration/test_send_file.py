"""``noizylab send PEER FILE`` between two real nodes: the file lands in the peer's folder with the same bytes and
progress is shown; the same name twice keeps both; a peer that does not allow ``files`` refuses in one line; a send
cut off part-way resumes where it stopped.

Alpha sends, beta receives (into ``[files] folder``, a folder of the test).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from noizylab_desktop._proto import noizylab_files_pb2 as fpb
from noizylab_desktop._proto import noizylab_files_pb2_grpc as fpb_grpc
from tests.conftest import NodeProcess, start_all, wait_for
from tests.security.hostile import channel

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess, Path]]:
    root: Path = tmp_path_factory.mktemp("send")
    inbox = root / "inbox"
    alpha = NodeProcess(root / "alpha", "alpha")
    beta = NodeProcess(root / "beta", "beta", files={"folder": str(inbox)})
    try:
        start_all(alpha, beta)
        beta.join(alpha.invite())
        wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
        beta.cli("allow", "alpha", "files")
        yield alpha, beta, inbox
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(NodeProcess.stop, (alpha, beta)))


def a_file(folder: Path, name: str, size: int, seed: bytes) -> Path:
    """A file of ``size`` bytes that differ from one seed to another."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes((hashlib.sha256(seed).digest() * (size // 32 + 1))[:size])
    return path


def test_a_file_sent_lands_in_the_peers_folder_with_the_same_bytes_and_progress_is_shown(
    grid: tuple[NodeProcess, NodeProcess, Path], tmp_path: Path
) -> None:
    alpha, _, inbox = grid
    source = a_file(tmp_path, "film.bin", 3 * MIB + 5, b"film")
    result = alpha.cli("send", "beta", str(source))
    assert result.stdout.strip() == "sent film.bin (3.0 MB) to beta: saved there as film.bin"
    assert "sending film.bin to beta: 100% (3.0 MB of 3.0 MB)" in result.stderr
    assert (inbox / "film.bin").read_bytes() == source.read_bytes()
    assert not any((inbox / ".noizylab-partial").iterdir()), "the finished part was left behind"


def test_the_same_name_twice_keeps_both_files(grid: tuple[NodeProcess, NodeProcess, Path], tmp_path: Path) -> None:
    alpha, _, inbox = grid
    first = a_file(tmp_path / "one", "notes.txt", 100, b"first")
    second = a_file(tmp_path / "two", "notes.txt", 100, b"second")
    assert alpha.json("send", "beta", str(first))["saved_as"] == "notes.txt"
    assert alpha.json("send", "beta", str(second))["saved_as"] == "notes (1).txt"
    assert (inbox / "notes.txt").read_bytes() == first.read_bytes()
    assert (inbox / "notes (1).txt").read_bytes() == second.read_bytes()


def test_a_peer_that_does_not_allow_files_refuses_in_one_line(
    grid: tuple[NodeProcess, NodeProcess, Path], tmp_path: Path
) -> None:
    alpha, beta, inbox = grid
    source = a_file(tmp_path, "refused.txt", 10, b"no")
    beta.cli("deny", "alpha", "files")
    try:
        result = alpha.cli("send", "beta", str(source), check=False)
    finally:
        beta.cli("allow", "alpha", "files")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "noizylab: error: beta does not allow files for this peer: allow it there with "
        "`noizylab allow PEER files` or from its tray"
    ]
    assert not (inbox / "refused.txt").exists()


def test_what_is_not_a_readable_file_is_one_line(grid: tuple[NodeProcess, NodeProcess, Path], tmp_path: Path) -> None:
    alpha, _, _ = grid
    missing = alpha.cli("send", "beta", str(tmp_path / "nope.txt"), check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"noizylab: error: {tmp_path / 'nope.txt'} does not exist"
    folder = alpha.cli("send", "beta", str(tmp_path), check=False)
    assert folder.returncode == 1 and "is not a file" in folder.stderr and "Traceback" not in folder.stderr


def test_a_send_cut_off_part_way_resumes_where_it_stopped(
    grid: tuple[NodeProcess, NodeProcess, Path], tmp_path: Path
) -> None:
    alpha, _, inbox = grid
    source = a_file(tmp_path, "big.bin", 4 * MIB, b"big")
    data = source.read_bytes()
    half = 2 * MIB
    # Alpha's own identity sends the offer and half of the bytes, then the connection goes away.
    chan = channel(alpha.identity(), grid[1])
    cut = threading.Event()

    def frames() -> Iterator[fpb.FilePart]:
        yield fpb.FilePart(offer=fpb.FileOffer(name="big.bin", size=len(data), sha256=hashlib.sha256(data).digest()))
        yield fpb.FilePart(data=data[:MIB])
        yield fpb.FilePart(data=data[MIB:half])
        cut.wait(60)

    partial = inbox / ".noizylab-partial"
    try:
        answers = fpb_grpc.FilesStub(chan).Receive(frames(), timeout=60)
        assert next(answers).have == 0
        wait_for(lambda: [p.stat().st_size for p in partial.iterdir()] == [half], what="half the file to be held")
        answers.cancel()
    finally:
        cut.set()
        chan.close()
    assert not (inbox / "big.bin").exists()

    sent = alpha.json("send", "beta", str(source))
    assert sent["resumed_from"] == half
    assert (inbox / "big.bin").read_bytes() == data
    assert os.listdir(partial) == []
