"""A node that goes away mid-task: the asker hears of it within 5 s, and an idempotent task runs again elsewhere."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NodeProcess
from tests.integration.tasks_helpers import kill_all, pair, read_pids, start_run

ONCE = """
import os, sys, time
flag = sys.argv[1]
if os.path.exists(flag):
    print("second run", flush=True)
else:
    with open(flag, "w") as f:
        f.write(str(os.getpid()))
    print("first run", flush=True)
    time.sleep(300)
"""


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    """alpha asks; beta and gamma (both labelled ``worker``) let it run tasks."""
    alpha = NodeProcess(tmp_path / "alpha", "alpha").start()
    beta = NodeProcess(tmp_path / "beta", "beta", labels=["worker"]).start()
    gamma = NodeProcess(tmp_path / "gamma", "gamma", labels=["worker"]).start()
    try:
        pair(alpha, beta)
        pair(alpha, gamma)
        beta.cli("allow", "alpha", "tasks")
        gamma.cli("allow", "alpha", "tasks")
        yield alpha, beta, gamma
    finally:
        for node in (alpha, beta, gamma):
            node.stop()


def _kill_node(node: NodeProcess) -> None:
    os.kill(node.pid, signal.SIGKILL)


def test_a_killed_node_is_noticed_within_5_s_and_the_task_is_reported_lost(
    trio: tuple[NodeProcess, NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    alpha, beta, _ = trio
    flag = tmp_path / "flag"
    with start_run(alpha, "--on", "beta", "--", sys.executable, "-c", ONCE, str(flag)) as run:
        assert run.stdout is not None and run.stdout.readline() == "first run\n"
        orphan = read_pids(flag, 1)
        try:
            _kill_node(beta)
            killed = time.monotonic()
            _, stderr = run.communicate(timeout=30)
            noticed = time.monotonic() - killed
        finally:
            kill_all(orphan)  # the node died without cleaning up: its child is ours to end
    assert run.returncode == 255
    assert stderr.strip().endswith("beta went away mid-task; its outcome is unknown")
    assert noticed < 5.0, f"the asker heard of it after {noticed:.1f} s"


def test_an_idempotent_task_runs_again_on_another_node(
    trio: tuple[NodeProcess, NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    alpha, beta, gamma = trio
    flag = tmp_path / "flag"
    args = ("--auto", "--label", "worker", "--idempotent", "-v", "--", sys.executable, "-c", ONCE, str(flag))
    with start_run(alpha, *args) as run:
        assert run.stdout is not None and run.stdout.readline() == "first run\n"
        orphan = read_pids(flag, 1)
        first = alpha.json("tasks")[0]["runner"]
        other = gamma if first == "beta" else beta
        try:
            _kill_node(beta if first == "beta" else gamma)
            rest, stderr = run.communicate(timeout=30)
        finally:
            kill_all(orphan)
    assert run.returncode == 0 and rest == "second run\n"
    assert f"{first} went away mid-task; the task is idempotent, re-running it on {other.name}" in stderr
    record = alpha.json("tasks")[0]
    assert (record["runner"], record["state"], record["tail"]) == (other.name, "exited", "first run\nsecond run\n")
