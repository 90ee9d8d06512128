"""Helpers for the tasks tests: a paired grid built once per module, and a `noizylab run` left running."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import NOIZYLAB, NodeProcess, start_all, wait_for


def pair(inviter: NodeProcess, joiner: NodeProcess) -> None:
    """Pair two running nodes and wait until each sees the other online."""
    joiner.join(inviter.invite())
    wait_for(lambda: (inviter.peer(joiner.name) or {}).get("online"), what=f"{inviter.name} to see {joiner.name}")
    wait_for(lambda: (joiner.peer(inviter.name) or {}).get("online"), what=f"{joiner.name} to see {inviter.name}")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """alpha and beta, paired; beta (label ``worker``) lets alpha run tasks, alpha does not let beta."""
    root = tmp_path_factory.mktemp("grid")
    alpha, beta = start_all(NodeProcess(root / "alpha", "alpha"), NodeProcess(root / "beta", "beta", labels=["worker"]))
    try:
        pair(alpha, beta)
        beta.cli("allow", "alpha", "tasks")
        yield alpha, beta
    finally:
        alpha.stop()
        beta.stop()


def start_run(node: NodeProcess, *args: str) -> subprocess.Popen[str]:
    """``noizylab run ARGS`` left running, its output piped."""
    return subprocess.Popen(
        [*NOIZYLAB, "--home", str(node.home), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_pids(path: Path, count: int) -> list[int]:
    """The ``count`` process IDs a task wrote to ``path``, once it has written them all."""
    lines = wait_for(
        lambda: path.exists() and len(path.read_text().split()) >= count and path.read_text().split(),
        what=f"{count} pids in {path}",
    )
    return [int(p) for p in lines[:count]]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_all(pids: list[int]) -> None:
    """Clean up processes a test left behind on purpose (a node killed under its tasks)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
