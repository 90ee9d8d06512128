"""The process tree tasks and Dask children run in, on Windows: a job object that a kill ends whole, on any loop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from noizylab_desktop.services.process_tree import ProcessTree
from tests.conftest import wait_for, within
from tests.integration.tasks_helpers import alive, read_pids
from tests.windows.test_tasks import TREE


def test_kill_ends_the_whole_tree_where_ctrl_break_has_no_console_to_reach(tmp_path: Path) -> None:
    # This test process, like a detached node, shares no console with the child: Ctrl-Break cannot be sent, and the
    # kill must still end the task, its child and its grandchild, without an error. (On Windows os.kill with
    # CTRL_BREAK_EVENT then ends the child alone and raises SystemError; Wine behaves the same, WINDOWS.md.)
    script, pids_file = tmp_path / "tree.py", tmp_path / "pids"
    script.write_text(TREE)

    async def scenario() -> int:
        tree = ProcessTree([sys.executable, str(script), "2", str(pids_file)])
        try:
            output = tree.output()
            first = await within(anext(output), 60, "the tree's first output")
            assert first.data.startswith(b"tree up")
            await within(tree.kill(0.3), 10, "the kill")
            async for _ in output:
                pass
            return await within(tree.wait(), 10, "the tree's exit")
        finally:
            tree.close()

    code = asyncio.run(scenario())
    pids = read_pids(pids_file, 3)  # all three were written before the grandchild said "tree up"
    assert code != 0
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5, what="the task, its child and grandchild to end")
