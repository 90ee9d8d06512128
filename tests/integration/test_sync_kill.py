"""kill -9 of either node mid-transfer: no partial file at a final path, and the sync completes after a restart."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import NodeProcess, wait_for
from tests.integration.test_sync_nodes import shared  # noqa: F401 - the fixture

Shared = tuple[NodeProcess, NodeProcess, Path, Path]


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".nzsync-*.tmp") if p.stat().st_size > 0]


def kill9(node: NodeProcess) -> None:
    pid = node.pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), what=f"{node.name} to die")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["alpha", "beta"])
def test_kill_9_during_a_large_transfer(shared: Shared, victim: str) -> None:  # noqa: F811
    alpha, beta, local, remote = shared
    data = os.urandom(64 * 1024 * 1024)
    (local / "large.bin").write_bytes(data)
    wait_for(lambda: temp_files(remote), timeout=30, what="the transfer to start")
    kill9(alpha if victim == "alpha" else beta)
    assert not (remote / "large.bin").exists() or (remote / "large.bin").read_bytes() == data
    (alpha if victim == "alpha" else beta).start()
    alpha.cli("sync", "wait", "--timeout", "90", timeout=120)
    assert hashlib.sha256((remote / "large.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert temp_files(remote) == []


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["alpha", "beta"])
def test_kill_9_during_many_small_files(shared: Shared, victim: str) -> None:  # noqa: F811
    alpha, beta, local, remote = shared
    files = {f"batch/{i // 100}/{i}.txt": os.urandom(2000 + i) for i in range(1000)}
    for rel, content in files.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(content)
    wait_for(
        lambda: len(list((remote / "batch").rglob("*.txt"))) > 50 if (remote / "batch").exists() else False,
        timeout=60,
        what="the first files to arrive",
    )
    kill9(alpha if victim == "alpha" else beta)
    arrived = {p.relative_to(remote).as_posix(): p.read_bytes() for p in (remote / "batch").rglob("*.txt")}
    assert 0 < len(arrived) and all(files[rel] == content for rel, content in arrived.items()), "no partial file"
    (alpha if victim == "alpha" else beta).start()
    alpha.cli("sync", "wait", "--timeout", "60", timeout=90)
    assert {p.relative_to(remote).as_posix(): p.read_bytes() for p in (remote / "batch").rglob("*.txt")} == files
