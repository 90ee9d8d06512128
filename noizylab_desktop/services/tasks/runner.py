"""The runner: runs tasks on this machine, a bounded number at once, with timeouts and cancel.

``execute`` yields the task's output chunks and then exactly one exit chunk. Closing the generator early (the asker
went away) kills the task's whole process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.core.errors import TaskError
from noizylab_desktop.services.process_tree import ProcessTree
from noizylab_desktop.services.tasks.handlers import ShellHandler, handler_for, parse_data
from noizylab_desktop.services.tasks.settings import TasksSettings

logger = logging.getLogger(__name__)

TIMED_OUT_EXIT = 124  # as coreutils' `timeout` reports it
CANNOT_START_EXIT = 127


def task_argv(spec: tpb.TaskSpec) -> list[str]:
    """The argv that runs ``spec``, or a one-line ``TaskError`` (unknown type, bad data, no command)."""
    if spec.task_type:
        return list(handler_for(spec.task_type).command(parse_data(spec.task_data)))
    if not spec.argv and not spec.shell:
        raise TaskError("nothing to run: give a command after `--`")
    return list(ShellHandler().command({"argv": list(spec.argv)} if spec.argv else {"shell": spec.shell}))


def check_cwd(cwd: str) -> None:
    """A working folder that exists, or a one-line error."""
    if cwd and not os.path.isdir(cwd):
        raise TaskError(f"the working folder {cwd} does not exist on this machine")


@dataclass
class Running:
    """A task this runner holds: waiting for a slot or running."""

    spec: tpb.TaskSpec
    asker_fp: bytes
    state: str = "waiting"
    ending: str = ""  # "cancelled" or "timed_out" once asked to end
    tree: ProcessTree | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


class Runner:
    """Tasks on this machine, at most ``max_parallel`` at once; the rest wait in order."""

    def __init__(self, config: TasksSettings) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(config.max_parallel)
        self.tasks: dict[str, Running] = {}
        self.finished: dict[str, int] = {}

    @property
    def queue_length(self) -> int:
        """Tasks running or waiting here."""
        return len(self.tasks)

    def cancel(self, task_id: str, why: str = "cancelled") -> bool:
        """Ask a task to end (grace signal, then kill); False when it is not here."""
        running = self.tasks.get(task_id)
        if running is None:
            return False
        if not running.ending:
            running.ending = why
        running.cancelled.set()
        if running.tree is not None:
            asyncio.ensure_future(running.tree.kill(self.config.grace_s))
        return True

    async def stop(self) -> None:
        """Kill every task (the node is stopping)."""
        trees = [r.tree for r in self.tasks.values() if r.tree is not None]
        for task_id in list(self.tasks):
            self.cancel(task_id, "cancelled")
        await asyncio.gather(*(t.kill(0.1) for t in trees), return_exceptions=True)

    async def execute(self, spec: tpb.TaskSpec, asker_fp: bytes = b"") -> AsyncGenerator[tpb.TaskChunk, None]:
        """Run ``spec`` here: its output, then one exit chunk. Raises ``TaskError`` before starting if it cannot."""
        argv = task_argv(spec)
        check_cwd(spec.cwd)
        if spec.id in self.tasks:
            raise TaskError(f"task {spec.id} is already running here")
        running = Running(spec, asker_fp)
        self.tasks[spec.id] = running
        try:
            async with contextlib.aclosing(self._run(running, argv)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self.tasks.pop(spec.id, None)
            if running.tree is not None:
                # Closed early (the asker went away) or done: either way nothing of the tree may stay.
                if running.tree.proc.poll() is None:
                    await running.tree.kill(self.config.grace_s)
                running.tree.close()

    async def _run(self, running: Running, argv: Sequence[str]) -> AsyncGenerator[tpb.TaskChunk, None]:
        spec = running.spec
        waited = asyncio.ensure_future(self._slots.acquire())
        cancelled = asyncio.ensure_future(running.cancelled.wait())
        await asyncio.wait({waited, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        cancelled.cancel()
        if not waited.done() or waited.cancelled():
            waited.cancel()
            now = time.time()
            yield _exit(143, "cancelled", "cancelled before it started", now, now)
            return
        try:
            started = time.time()
            running.state = "running"
            try:
                running.tree = ProcessTree(argv, env=dict(spec.env), cwd=spec.cwd or None)
            except OSError as exc:
                error = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
                yield _exit(CANNOT_START_EXIT, "failed", error, started, time.time())
                return
            tree = running.tree
            timer = None
            if spec.timeout_s > 0:
                timer = asyncio.get_running_loop().call_later(spec.timeout_s, self.cancel, spec.id, "timed_out")
            if running.cancelled.is_set():  # cancelled while it was being started
                asyncio.ensure_future(tree.kill(self.config.grace_s))
            exited = asyncio.ensure_future(tree.wait())
            try:
                async for piece in tree.output():
                    yield tpb.TaskChunk(output=tpb.TaskOutput(stream=piece.stream, data=piece.data))
                code = await exited
            finally:
                if timer is not None:
                    timer.cancel()
                if not exited.done():
                    exited.cancel()
                    with contextlib.suppress(BaseException):
                        await tree.kill(self.config.grace_s)
            ended = time.time()
            if running.ending == "timed_out":
                error = f"timed out after {spec.timeout_s:g} s"
                yield _exit(TIMED_OUT_EXIT, "timed_out", error, started, ended)
            elif running.ending == "cancelled":
                yield _exit(code, "cancelled", "cancelled", started, ended)
            else:
                yield _exit(code, "exited", "", started, ended)
        finally:
            self._slots.release()


def _exit(code: int, state: str, error: str, started: float, ended: float) -> tpb.TaskChunk:
    return tpb.TaskChunk(
        exit=tpb.TaskExit(exit_code=code, state=state, error=error, started_at=started, ended_at=ended)
    )
