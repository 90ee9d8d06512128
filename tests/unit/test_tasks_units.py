"""The task runner's parts on their own: bounded output, tree kill, config, history and job handlers."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.core.errors import ConfigError, TaskError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.process_tree import QUEUE_CHUNKS, ProcessTree
from noizylab_desktop.services.tasks import gpu_job
from noizylab_desktop.services.tasks.handlers import handler_for, parse_data
from noizylab_desktop.services.tasks.runner import Runner
from noizylab_desktop.services.tasks.settings import TasksSettings
from noizylab_desktop.services.tasks.store import TaskStore
from tests.conftest import wait_for
from tests.integration.tasks_helpers import alive

FLOOD_BYTES = 64 * 2**20


def _blocked_on_pipe(pid: int) -> bool:
    return "pipe" in Path(f"/proc/{pid}/wchan").read_text()


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc wchan")
def test_a_slow_reader_makes_the_child_wait_instead_of_the_runner_buffering() -> None:
    async def scenario() -> int:
        flood = (
            f"import sys\nblock = b'x' * 65536\nfor _ in range({FLOOD_BYTES // 65536}): sys.stdout.buffer.write(block)"
        )
        tree = ProcessTree([sys.executable, "-c", flood])
        try:
            # Nobody reads yet: the queue fills to its bound and the child blocks writing to its pipe.
            full = QUEUE_CHUNKS
            await asyncio.to_thread(wait_for, lambda: tree._queue.qsize() == full, 10.0, "the queue to fill")
            await asyncio.to_thread(wait_for, lambda: _blocked_on_pipe(tree.pid), 10.0, "the child to block")
            assert tree.proc.poll() is None
            assert tree._queue.qsize() == QUEUE_CHUNKS
            received = 0
            async for chunk in tree.output():
                received += len(chunk.data)
            assert await tree.wait() == 0
            return received
        finally:
            tree.close()

    assert asyncio.run(scenario()) == FLOOD_BYTES


def test_kill_ends_the_whole_tree_even_a_child_that_ignores_sigterm() -> None:
    script = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, "
        "signal.SIG_IGN); print(1, flush=True); time.sleep(300)'])\n"
        "print(c.pid, flush=True)\ntime.sleep(300)"
    )

    async def scenario() -> tuple[int, int]:
        tree = ProcessTree([sys.executable, "-c", script])
        lines = b""
        chunks = tree.output()
        while lines.count(b"\n") < 2:
            lines += (await anext(chunks)).data
        child = next(int(word) for word in lines.split() if word != b"1")  # the other line is the child's "1"
        await tree.kill(grace_s=0.2)
        code = await tree.wait()
        tree.close()
        return code, child

    code, child = asyncio.run(scenario())
    assert code == 128 + signal.SIGTERM
    wait_for(lambda: not alive(child), timeout=2.0, what="the child that ignored SIGTERM to be killed")


def test_a_runner_holds_tasks_past_its_limit_until_a_slot_frees() -> None:
    async def scenario() -> list[str]:
        runner = Runner(TasksSettings(max_parallel=1))
        first = runner.execute(tpb.TaskSpec(id="a", argv=["sleep", "30"]))
        second = runner.execute(tpb.TaskSpec(id="b", argv=["echo", "b"]))
        first_exit = asyncio.ensure_future(_last(first))
        second_exit = asyncio.ensure_future(_last(second))
        await asyncio.to_thread(wait_for, lambda: len(runner.tasks) == 2, 5.0, "both tasks to be held")
        assert runner.tasks["b"].state == "waiting" and runner.queue_length == 2
        runner.cancel("a")
        return [(await first_exit).state, (await second_exit).state]

    assert asyncio.run(scenario()) == ["cancelled", "exited"]


async def _last(chunks: object) -> tpb.TaskExit:
    end = tpb.TaskExit()
    async for chunk in chunks:  # type: ignore[attr-defined]
        if chunk.WhichOneof("body") == "exit":
            end = chunk.exit
    return end


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_paralel": 2}, "unknown setting tasks.max_paralel: use one of"),
        ({"max_parallel": 0}, "tasks.max_parallel must be a whole number, 1 or more, not 0"),
        ({"grace_s": "soon"}, "tasks.grace_s must be a number of seconds above 0 and at most 10, not 'soon'"),
    ],
)
def test_bad_settings_get_one_line_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_section(TasksSettings, table)
    assert caught.value.message.startswith(message)


def test_history_finds_by_prefix_and_marks_tasks_lost_by_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite"
    store = TaskStore(path)
    for task_id in ("abc1", "abc2", "def3"):
        store.record(tpb.TaskRecord(id=task_id, role="local", asker="a", runner="a", command="x", state="running"))
    store.finish("def3", "exited", 0, 1.0, b"tail")
    assert store.find("def").tail == b"tail"
    with pytest.raises(TaskError, match="'abc' matches several tasks: give more of the ID"):
        store.find("abc")
    store.close()
    again = TaskStore(path)
    assert {r.id: r.state for r in again.recent()} == {"abc1": "lost", "abc2": "lost", "def3": "exited"}
    assert again.find("abc1").error == "this node stopped while the task ran"
    again.close()


def test_job_handlers_check_their_data() -> None:
    with pytest.raises(TaskError, match="task_data is not JSON"):
        parse_data("{nope")
    with pytest.raises(TaskError, match="gpu_inference: task_data.input must be a list of numbers"):
        handler_for("gpu_inference").command({"input": "three"})
    assert handler_for("gpu_inference").needs({"min_free_vram_mib": 512}).min_free_vram_bytes == 512 * 2**20
    probabilities = gpu_job.forward([1.0, 2.0, 3.0])
    assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-9


def test_offers_become_candidates_and_a_gpu_need_picks_the_node_with_free_vram() -> None:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.services.routing import Needs, choose
    from noizylab_desktop.services.tasks.asker import _candidate

    def offer(gpu_free_gib: float | None, load: float) -> tpb.TaskOffer:
        gpus = [] if gpu_free_gib is None else [pb.Gpu(name="RTX", memory_total_bytes=8 * 2**30,
                                                       memory_free_bytes=int(gpu_free_gib * 2**30))]  # fmt: skip
        return tpb.TaskOffer(allows=True, load=load, gpus=gpus, capabilities=pb.Capabilities(os="linux"))

    mac = _candidate("m", "mac", True, True, offer(None, 0.0), 0.0)
    small = _candidate("s", "small", True, False, offer(1.0, 0.1), 2.0)
    omen = _candidate("o", "omen", True, False, offer(6.0, 0.9), 3.0)
    assert choose([mac, small, omen], Needs()).name == "mac"
    assert choose([mac, small, omen], Needs(gpu=True)).name == "small"
    decision = choose([mac, small, omen], Needs(gpu=True, min_free_vram_bytes=4 * 2**30))
    assert (decision.name, decision.decided_by, decision.eligible) == ("omen", "scheduler", ("omen",))
