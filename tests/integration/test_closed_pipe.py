"""Output into a pipe whose reader has gone (`noizylab metrics --json | head -1`) ends quietly, as git's does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from tests.conftest import NOIZYLAB, NodeProcess
from tests.slowness import scaled


def _into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``noizylab ARGS`` with stdout a pipe whose reading end is already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*NOIZYLAB, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=scaled(60)
        )
    finally:
        os.close(write_end)


def test_a_command_whose_reader_has_gone_exits_quietly(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    for command in (["metrics", "--json"], ["status"]):
        result = _into_a_closed_pipe("--home", str(alpha.home), *command)
        assert (result.returncode, result.stderr) == (141, ""), (command, result.stderr)
