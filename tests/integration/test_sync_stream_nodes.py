"""Between two real nodes, whole files and batches of small files travel over the mTLS gRPC channel: verified,
complete at their final paths, the replaced version kept on the peer."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.conftest import NodeProcess, wait_for
from tests.integration.test_sync_nodes import shared  # noqa: F401 - the fixture

Shared = tuple[NodeProcess, NodeProcess, Path, Path]


def digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def test_a_large_file_and_many_small_files_arrive_whole_and_a_replaced_one_is_kept(shared: Shared) -> None:  # noqa: F811
    alpha, _, local, remote = shared
    big = os.urandom(24 * 1024 * 1024 + 777)
    (local / "media").mkdir()
    (local / "media" / "take.mov").write_bytes(big)
    small = {f"notes/{i // 100}/{i}.md": os.urandom(500 + i) for i in range(400)}
    for rel, data in small.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    alpha.cli("sync", "wait", "--timeout", "60", timeout=90)
    assert digest(remote / "media" / "take.mov") == hashlib.sha256(big).digest()
    assert {p.relative_to(remote).as_posix(): p.read_bytes() for p in (remote / "notes").rglob("*.md")} == small
    assert not list(remote.rglob(".nzsync-*")), "no temp file is left at the peer"

    newer = os.urandom(len(big))
    (local / "media" / "take.mov").write_bytes(newer)
    alpha.cli("sync", "wait", "--timeout", "60", timeout=90)
    assert digest(remote / "media" / "take.mov") == hashlib.sha256(newer).digest()
    kept = [p for p in (remote / ".nzversions").rglob("*") if p.is_file() and p.stat().st_size == len(big)]
    assert [digest(p) for p in kept] == [hashlib.sha256(big).digest()], "the replaced version is kept on the peer"

    # A large file made on the serving side comes back over Sync.GetStream, whole and verified.
    pulled = os.urandom(6 * 1024 * 1024 + 5)
    (remote / "media" / "from-beta.mov").write_bytes(pulled)
    wait_for(
        lambda: (
            (local / "media" / "from-beta.mov").exists()
            and digest(local / "media" / "from-beta.mov") == hashlib.sha256(pulled).digest()
        ),
        timeout=60,
        what="the file made on beta to arrive whole",
    )
    assert not list(local.rglob(".nzsync-*")), "no temp file is left here"
