"""``Files.Receive`` against a hostile peer: without ``files`` it is refused; with it, a peer can only put a file of
a bare name into the received-files folder, never send more than it offered, never leave a damaged file, and never
replace a file already there.

The host runs for the module with its folder in a sentinel folder; ``mallory`` holds ``files``, ``nobody`` holds
nothing. Both call the host's wire with raw stubs, skipping our own sending code.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from noizylab_desktop._proto import noizylab_files_pb2 as fpb
from noizylab_desktop._proto import noizylab_files_pb2_grpc as fpb_grpc
from tests.conftest import NodeProcess, start_all, wait_for
from tests.security.hostile import Hostile, hostile_peer
from tests.slowness import scaled

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Hostile, Hostile, NodeProcess]]:
    root = tmp_path_factory.mktemp("files")
    sentinel = root / "sentinel"
    folder = sentinel / "received"
    folder.mkdir(parents=True)
    (sentinel / "secret.txt").write_text("keep")
    (folder / "taken.txt").write_text("mine")
    host = NodeProcess(root / "host", "host", files={"folder": str(folder)})
    mallory, nobody = NodeProcess(root / "mallory", "mallory"), NodeProcess(root / "nobody", "nobody")
    start_all(host, mallory, nobody)
    peers: list[Hostile] = []
    try:
        peers.append(hostile_peer(host, mallory, "files"))
        peers.append(hostile_peer(host, nobody))
        yield folder, peers[0], peers[1], host
    finally:
        for peer in peers:
            peer.close()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(NodeProcess.stop, (host, mallory, nobody)))


def offer(name: str, data: bytes, size: int | None = None, sha: bytes | None = None) -> list[fpb.FilePart]:
    """The frames of one file: its offer, then its bytes."""
    size = len(data) if size is None else size
    head = fpb.FileOffer(name=name, size=size, sha256=sha or hashlib.sha256(data).digest())
    return [fpb.FilePart(offer=head), fpb.FilePart(data=data)]


def send(peer: Hostile, frames: list[fpb.FilePart]) -> tuple[Code, str, list[fpb.FileAnswer]]:
    """Send ``frames`` as one ``Files.Receive`` stream: how it ended, its details and the answers read."""
    answers: list[fpb.FileAnswer] = []
    ended = threading.Event()

    def requests() -> Iterator[fpb.FilePart]:
        yield from frames
        # Stay open for the answer, as a real sender does: half-closing can race the host's refusal, which gRPC
        # then reports as INTERNAL in place of the status sent (grpc/grpc#36066).
        ended.wait(scaled(30))

    try:
        for answer in peer.stub(fpb_grpc.FilesStub).Receive(requests(), timeout=scaled(20)):
            answers.append(answer)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", answers
    finally:
        ended.set()
    return Code.OK, "", answers


def everything(folder: Path) -> dict[str, bytes]:
    """Every file under the sentinel folder (the received folder's parent), by path, bar unfinished parts."""
    found = {}
    for here, _, files in os.walk(folder.parent):
        for name in files:
            path = Path(here) / name
            if ".noizylab-partial" not in path.parts:
                found[path.relative_to(folder.parent).as_posix()] = path.read_bytes()
    return found


def test_a_peer_without_the_files_permission_is_refused_and_nothing_is_written(
    grid: tuple[Path, Hostile, Hostile, NodeProcess],
) -> None:
    folder, _, nobody, _ = grid
    before = everything(folder)
    code, details, answers = send(nobody, offer("hello.txt", b"hello"))
    assert code == Code.PERMISSION_DENIED
    assert "does not allow files" in details
    assert answers == []
    assert everything(folder) == before


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "../../secret.txt", "/tmp/abs.txt", "sub/inner.txt", "..\\win.txt", "..", ".", "", "CON",
     "nul.txt", "a\x00b", "line\nbreak", "trailing.", "x" * 300, "c:evil"],
)  # fmt: skip
def test_a_name_that_is_not_a_bare_file_name_is_refused_and_nothing_leaves_the_folder(
    grid: tuple[Path, Hostile, Hostile, NodeProcess], name: str
) -> None:
    folder, mallory, _, _ = grid
    before = everything(folder)
    code, details, _ = send(mallory, offer(name, b"payload"))
    assert code == Code.INVALID_ARGUMENT, details
    assert "name" in details and len(details.splitlines()) == 1
    assert everything(folder) == before


def test_more_bytes_than_offered_are_refused_and_no_file_is_placed(
    grid: tuple[Path, Hostile, Hostile, NodeProcess],
) -> None:
    folder, mallory, _, _ = grid
    before = everything(folder)
    data = b"x" * 1000
    code, details, _ = send(mallory, offer("long.bin", data, size=10, sha=hashlib.sha256(data[:10]).digest()))
    assert code == Code.INVALID_ARGUMENT
    assert "more bytes than the 10 offered" in details
    assert everything(folder) == before


def test_a_file_whose_hash_differs_is_dropped(grid: tuple[Path, Hostile, Hostile, NodeProcess]) -> None:
    folder, mallory, _, _ = grid
    before = everything(folder)
    code, details, _ = send(mallory, offer("damaged.bin", b"abc", sha=hashlib.sha256(b"abd").digest()))
    assert code == Code.FAILED_PRECONDITION
    assert "arrived damaged" in details
    assert everything(folder) == before
    assert not any((folder / ".noizylab-partial").iterdir()), "the damaged part was kept"


def test_a_name_already_taken_is_never_overwritten(grid: tuple[Path, Hostile, Hostile, NodeProcess]) -> None:
    folder, mallory, _, _ = grid
    code, details, answers = send(mallory, offer("taken.txt", b"theirs"))
    assert code == Code.OK, details
    assert answers[-1].saved_as == "taken (1).txt"
    assert (folder / "taken.txt").read_text() == "mine"
    assert (folder / "taken (1).txt").read_text() == "theirs"


def test_denying_files_ends_a_stream_under_way(grid: tuple[Path, Hostile, Hostile, NodeProcess]) -> None:
    folder, mallory, _, host = grid
    data = b"y" * 4096
    held = threading.Event()

    def frames() -> Iterator[fpb.FilePart]:
        yield from offer("slow.bin", data)[:1]
        yield fpb.FilePart(data=data[:100])
        held.wait(60)  # the rest never comes: the stream stays open until the host ends it

    answers = mallory.stub(fpb_grpc.FilesStub).Receive(frames(), timeout=scaled(60))
    try:
        assert next(answers).have == 0
        partial = folder / ".noizylab-partial"
        wait_for(lambda: any(p.stat().st_size == 100 for p in partial.iterdir()), 10, "the first bytes to be held")
        host.cli("deny", "mallory", "files")
        with pytest.raises(grpc.RpcError) as ended:
            next(answers)
        assert ended.value.code() == Code.PERMISSION_DENIED
    finally:
        held.set()
        host.cli("allow", "mallory", "files")
    assert not (folder / "slow.bin").exists()
