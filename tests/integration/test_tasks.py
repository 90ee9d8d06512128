"""Tasks between two real nodes: complete ordered output, exit codes, cancel, timeouts, permissions, history."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.grid import Grid, TaskResult
from tests.conftest import NodeProcess, wait_for
from tests.integration.tasks_helpers import alive, grid, read_pids, start_run

__all__ = ["grid"]

PY = sys.executable
TREE = """
import os, signal, subprocess, sys, time
children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"]) for _ in range(2)]
stubborn = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
with open(sys.argv[1], "w") as f:
    f.write(" ".join(str(p) for p in [os.getpid(), *(c.pid for c in children), stubborn.pid]))
print("tree up", flush=True)
time.sleep(300)
"""


def test_50000_lines_arrive_complete_and_in_order_with_stderr_apart(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid
    script = "import sys\nfor i in range(50000): print(i)\nprint('warned', file=sys.stderr)"
    result = alpha.cli("run", "--on", "beta", "--", PY, "-c", script)
    assert result.stdout.splitlines() == [str(i) for i in range(50000)]
    assert result.stderr == "warned\n"


def test_exit_codes_pass_through_and_both_nodes_keep_the_history_across_restarts(
    grid: tuple[NodeProcess, NodeProcess],
) -> None:
    alpha, beta = grid
    result = alpha.cli("run", "--on", "beta", "--", "sh", "-c", "echo bye; exit 7", check=False)
    assert (result.returncode, result.stdout) == (7, "bye\n")
    asked = alpha.json("tasks")[0]
    assert asked["runner"] == "beta" and asked["role"] == "asked" and asked["decided_by"] == "user"
    assert (asked["state"], asked["exit_code"], asked["tail"]) == ("exited", 7, "bye\n")
    beta.stop()
    beta.start()
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta again")
    ran = json.loads(beta.cli("tasks", "show", asked["id"][:8], "--json").stdout)
    assert (ran["role"], ran["asker"], ran["state"], ran["exit_code"]) == ("ran", "alpha", "exited", 7)
    shown = alpha.cli("tasks", "show", asked["id"]).stdout
    assert "ran on    beta (decided by the user: asked for beta)" in shown and "exit code 7" in shown


def test_ctrl_c_cancels_the_remote_task_and_no_process_of_its_tree_survives(
    grid: tuple[NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    alpha, _ = grid
    pids_file = tmp_path / "pids"
    with start_run(alpha, "--on", "beta", "--", PY, "-c", TREE, str(pids_file)) as run:
        assert run.stdout is not None
        assert run.stdout.readline() == "tree up\n"
        pids = read_pids(pids_file, 4)
        assert all(alive(p) for p in pids)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=10)
    assert run.returncode == 128 + signal.SIGTERM
    wait_for(lambda: not any(alive(p) for p in pids), timeout=2.0, what="the whole tree to be gone")
    assert stderr.startswith("noizylab: cancelling task ")
    assert alpha.json("tasks")[0]["state"] == "cancelled"


def test_noizylab_cancel_ends_a_running_task_by_id(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid
    with start_run(alpha, "--on", "beta", "--", "sh", "-c", "echo ready; sleep 300") as run:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        task = next(t for t in alpha.json("tasks") if t["state"] == "running")
        assert alpha.cli("cancel", task["id"][:6]).stdout.strip() == f"task {task['id']}: cancelling on beta"
        run.communicate(timeout=10)
    assert run.returncode == 128 + signal.SIGTERM
    again = alpha.cli("cancel", task["id"], check=False)
    assert again.stderr.strip() == f"noizylab: error: task {task['id']} is not running any more (it ended cancelled)"
    wrong = alpha.cli("cancel", "zzzz", check=False)
    assert wrong.stderr.strip() == "noizylab: error: no task matches 'zzzz': see `noizylab tasks`"


def test_a_timeout_kills_the_task_and_says_so(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid
    result = alpha.cli("run", "--on", "beta", "--timeout", "0.5", "--", "sleep", "30", check=False)
    assert result.returncode == 124
    assert result.stderr.strip().endswith(": timed out after 0.5 s")
    record = alpha.json("tasks")[0]
    assert record["state"] == "timed_out" and record["ended_at"] - record["created_at"] < 10


def test_refusals_and_bad_input_get_one_line_errors(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = grid

    def error(node: NodeProcess, *args: str) -> str:
        result = node.cli("run", *args, check=False)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("noizylab: error: ")
        return result.stderr.strip().removeprefix("noizylab: error: ")

    assert error(beta, "--on", "alpha", "--", "true") == (
        "alpha does not allow tasks for this peer: allow it there with `noizylab allow PEER tasks` or from its tray"
    )
    assert error(alpha, "--on", "nobody", "--", "true") == "no paired peer matches 'nobody': see `noizylab peers`"
    assert error(alpha, "--gpu", "--", "true") == (
        "no node can run this task (alpha: has no NVIDIA GPU; beta: has no NVIDIA GPU)"
    )
    assert error(beta, "--label", "cuda", "--", "true") == (
        "no node can run this task (beta: lacks the label cuda; alpha: does not allow tasks from this node)"
    )
    assert error(alpha, "--") == "nothing to run: put the command after `--`, e.g. `noizylab run -- uname -a`"
    assert error(alpha, "--env", "NOEQUALS", "--", "true") == "--env needs NAME=VALUE, not 'NOEQUALS'"
    assert error(alpha, "--on", "beta", "--cwd", "/no/such/dir", "--", "true") == (
        "the working folder /no/such/dir does not exist on this machine"
    )
    assert error(alpha, "--type", "teleport", "--on", "beta") == (
        "unknown task type 'teleport': this node knows gpu_inference, shell"
    )
    missing = alpha.cli("run", "--on", "beta", "--", "no-such-command-here", check=False)
    assert missing.returncode == 127 and "cannot start 'no-such-command-here'" in missing.stderr


def test_auto_routing_honours_labels_and_records_who_decided(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid
    result = alpha.cli("run", "--auto", "--label", "worker", "-v", "--", "echo", "hi")
    assert result.stdout == "hi\n"
    assert "runs on beta (scheduler: lowest load score" in result.stderr
    record = alpha.json("tasks")[0]
    assert (record["runner"], record["decided_by"]) == ("beta", "scheduler")
    assert record["reason"].endswith("of 1 eligible")


def test_the_gpu_inference_job_fails_with_one_line_where_there_is_no_gpu(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU: tests/integration/test_tasks_gpu.py covers it")
    result = alpha.cli("run", "--on", "beta", "--type", "gpu_inference", "--data", '{"input": [1, 2]}', check=False)
    assert result.returncode == 3
    assert result.stderr.startswith("gpu_inference: no NVIDIA GPU on this machine")


def test_env_and_working_folder_reach_the_task(grid: tuple[NodeProcess, NodeProcess], tmp_path: Path) -> None:
    alpha, _ = grid
    result = alpha.cli("run", "--on", "beta", "--env", "GREETING=hej", "--cwd", str(tmp_path), "--shell", "--",
                       'echo "$GREETING from $(pwd)"')  # fmt: skip
    assert result.stdout == f"hej from {tmp_path}\n"


def test_a_local_task_needs_no_peer(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid
    started = time.time()
    result = alpha.cli("run", "--on", "self", "--", "sh", "-c", "echo $0", "local")
    assert result.stdout == "local\n"
    record = alpha.json("tasks")[0]
    assert record["role"] == "local" and record["runner"] == "alpha" and record["created_at"] >= started - 1


def test_the_python_api_runs_typed_jobs_and_batches(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = grid

    async def scenario() -> tuple[TaskResult, TaskResult, list[str]]:
        async with Grid(alpha.home) as g:
            shell = await g.execute_task("shell", {"argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]}, on="beta")
            auto = await g.execute_task(task_data={"shell": "echo routed"}, require_ai_decision=True, labels=["worker"])
            requests = [tpb.SubmitRequest(spec=tpb.TaskSpec(argv=["echo", str(i)]), on="beta") for i in range(20)]
            ids = [a.id for a in await g.tasks.submit_batch(requests)]
            return shell, auto, ids

    shell, auto, ids = asyncio.run(scenario())
    assert (shell.node, shell.state, shell.exit_code, shell.stdout, shell.stderr) == (
        "beta",
        "exited",
        3,
        b"out\n",
        b"err\n",
    )
    assert (auto.node, auto.decided_by, auto.stdout, auto.ok) == ("beta", "scheduler", b"routed\n", True)

    def batch_done() -> bool:
        records = {r["id"]: r for r in alpha.json("tasks", "-n", "100")}
        return all(records[i]["state"] == "exited" for i in ids)

    wait_for(batch_done, what="the batch to finish")
    tails = {r["id"]: r["tail"] for r in alpha.json("tasks", "-n", "100")}
    assert [tails[i] for i in ids] == [f"{i}\n" for i in range(20)]
