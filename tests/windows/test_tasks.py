"""Tasks on a Windows node: output streamed as it is written, exit codes, a cancel that ends the whole job-object tree
(a child of a child too), a timeout; asked for by the node itself and by a Linux peer."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.tasks_helpers import alive, read_pids, start_run
from tests.windows.conftest import LinuxNode, pair

PY = sys.executable
SLEEPER = "import time; print('ready', flush=True); time.sleep(300)"
# Each level writes its pid, then starts the next: the task, its child and its grandchild.
TREE = """
import os, subprocess, sys, time
depth, pids = int(sys.argv[1]), sys.argv[2]
with open(pids, "a") as f:
    f.write(f"{os.getpid()}\\n")
if depth:
    subprocess.Popen([sys.executable, __file__, str(depth - 1), pids])
else:
    print("tree up", flush=True)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def omen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A running Windows node."""
    (node,) = start_all(NodeProcess(tmp_path_factory.mktemp("win") / "omen", "omen"))
    try:
        yield node
    finally:
        node.stop()


def test_output_streams_while_the_task_runs_and_the_exit_code_passes_through(omen: NodeProcess) -> None:
    script = "import sys\nfor i in range(20000): print(i)\nprint('warned', file=sys.stderr)\nsys.exit(7)"
    result = omen.cli("run", "--on", "self", "--", PY, "-c", script, check=False)
    assert result.returncode == 7
    assert result.stdout.splitlines() == [str(i) for i in range(20000)] and result.stderr == "warned\n"
    # The first line arrives while the task still runs.
    with start_run(
        omen, "--on", "self", "--", PY, "-c", "import time; print('ready', flush=True); time.sleep(300)"
    ) as run:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        assert run.poll() is None
        task = next(t for t in omen.json("tasks") if t["state"] == "running")
        omen.cli("cancel", task["id"])
        run.communicate(timeout=30)


@pytest.mark.windows_smoke
def test_cancel_ends_the_whole_job_object_tree_child_of_a_child_included(omen: NodeProcess, tmp_path: Path) -> None:
    script, pids_file = tmp_path / "tree.py", tmp_path / "pids"
    script.write_text(TREE)
    with start_run(omen, "--on", "self", "--", PY, str(script), "2", str(pids_file)) as run:
        assert run.stdout is not None and run.stdout.readline() == "tree up\n"
        pids = read_pids(pids_file, 3)
        assert all(alive(p) for p in pids)
        task = next(t for t in omen.json("tasks") if t["state"] == "running")
        assert omen.cli("cancel", task["id"][:6]).stdout.strip() == f"task {task['id']}: cancelling on omen"
        run.communicate(timeout=30)
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5, what="the task, its child and grandchild to be gone")
    record = next(t for t in omen.json("tasks") if t["id"] == task["id"])
    assert record["state"] == "cancelled"


def test_a_timeout_ends_the_task_and_says_so(omen: NodeProcess, tmp_path: Path) -> None:
    script, pids_file = tmp_path / "tree.py", tmp_path / "pids"
    script.write_text(TREE)
    result = omen.cli("run", "--on", "self", "--timeout", "2", "--", PY, str(script), "1", str(pids_file), check=False)
    assert result.returncode == 124 and result.stdout == "tree up\n"
    assert result.stderr.strip().endswith(": timed out after 2 s")
    pids = read_pids(pids_file, 2)
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5, what="the timed-out tree to be gone")
    assert omen.json("tasks")[0]["state"] == "timed_out"


@pytest.mark.windows_smoke
def test_a_linux_peer_runs_a_task_on_the_windows_node(
    omen: NodeProcess, make_linux_node: Callable[..., LinuxNode]
) -> None:
    linux = make_linux_node("penguin").start()
    pair(omen, linux)
    omen.cli("allow", "penguin", "tasks")
    script = "import sys\nfor i in range(5000): print(i)\nprint('warned', file=sys.stderr)\nsys.exit(7)"
    result = linux.cli("run", "--on", "omen", "--", PY, "-c", script, check=False)
    assert (result.returncode, result.stderr) == (7, "warned\n")
    assert result.stdout.splitlines() == [str(i) for i in range(5000)]
    timed = linux.cli(
        "run", "--on", "omen", "--timeout", "1", "--", PY, "-c", "import time; time.sleep(60)", check=False
    )
    assert timed.returncode == 124 and timed.stderr.strip().endswith(": timed out after 1 s")
    omen.cli("unpair", "penguin")
