"""One supervised Dask process (the scheduler or this node's worker), run under the node's supervisor.

``run`` asks ``prepare`` for the child's configuration (a fresh certificate each time: a restart re-asks the
scheduler's node, which may refuse), starts ``child.py`` as a ``ProcessTree`` (``subprocess.Popen`` with reader
threads: it works on any loop, qasync on Windows included), and waits. A child that exits unasked raises, so the
supervisor restarts it with backoff; ``Retired`` from ``prepare`` ends it for good; ``stop`` ends it now. ``child``
says what runs now, for ``noizylab tasks`` and the tray's task console (through the supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from noizylab_desktop.core.config import atomic_write
from noizylab_desktop.core.errors import DaskError
from noizylab_desktop.core.supervisor import ChildProcess
from noizylab_desktop.services.process_tree import STDOUT, ProcessTree

logger = logging.getLogger(__name__)

CHILD = "noizylab_desktop.services.dask.child"
PREFIX = b"noizylab-dask "
STOP_WAIT_S = 10.0
MAX_LINE = 1024 * 1024


class Retired(Exception):
    """The child must not start again (its node left the cluster, or the cluster ended)."""


Prepare = Callable[[], Awaitable[dict[str, Any]]]
OnMessage = Callable[[str, dict[str, Any]], None]  # ("ready" or "status", its data)


class DaskChild:
    """A service for ``Supervisor.start``: one Dask process, restarted when it dies, until stopped or retired."""

    def __init__(
        self, name: str, role: str, folder: Path, prepare: Prepare, on_message: OnMessage | None = None
    ) -> None:
        self.name = name
        self.role = role  # "Dask scheduler of cluster 0123abcd", as the task list shows it
        self.folder = folder
        self._prepare = prepare
        self._on_message = on_message
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pid = 0
        self.retired = False
        self.address = ""  # where the running process listens, once it said so
        self._began = (0.0, 0.0)  # (wall clock, monotonic) when the running process started

    async def run(self) -> None:
        if self._stopping.is_set() or self.retired:
            return
        self._idle.clear()
        try:
            try:
                config = await self._prepare()
            except Retired as exc:
                self.retired = True
                self._fail_ready(DaskError(str(exc)))
                logger.info("%s will not start again: %s", self.name, exc)
                return
            await self._run_child(config)
        except Exception as exc:
            self._fail_ready(exc if isinstance(exc, DaskError) else DaskError(f"{self.name} failed: {exc}"))
            raise
        finally:
            self._idle.set()

    def _fail_ready(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # retrieved: nobody may be waiting for it

    async def _run_child(self, config: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / f"{self.name}.json"
        # The child deletes the file as soon as it has read it: the key it holds stays in the child's memory only.
        atomic_write(path, json.dumps({**config, "parent": os.getpid()}).encode(), mode=0o600)
        tree = ProcessTree([sys.executable, "-m", CHILD, str(path)], cwd=str(self.folder))
        self.pid = tree.pid
        self._began = (time.time(), time.monotonic())
        reading = asyncio.ensure_future(self._read(tree))
        exited = asyncio.ensure_future(tree.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                return
            raise DaskError(f"{self.name} exited with status {exited.result()}")
        finally:
            stop.cancel()
            await tree.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(exited), STOP_WAIT_S)
            exited.cancel()
            tree.close()
            reading.cancel()
            path.unlink(missing_ok=True)
            self.pid = 0
            self.address = ""

    async def _read(self, tree: ProcessTree) -> None:
        pending = {1: b"", 2: b""}
        async for chunk in tree.output():
            lines = (pending[chunk.stream] + chunk.data).split(b"\n")
            pending[chunk.stream] = lines.pop()[-MAX_LINE:]
            for line in lines:
                if chunk.stream == STDOUT and line.startswith(PREFIX):
                    self._heard(line[len(PREFIX) :].decode("utf-8", "replace"))
                elif line.strip():
                    logger.debug("%s: %s", self.name, line.decode("utf-8", "replace"))

    def _heard(self, text: str) -> None:
        kind, _, body = text.partition(" ")
        try:
            data = json.loads(body)
        except ValueError:
            logger.warning("%s said something unreadable: %.200s", self.name, text)
            return
        if kind == "ready":
            if self.ready.done():
                self.ready = asyncio.get_running_loop().create_future()
            self.ready.set_result(data)
            self.address = str(data.get("address") or "")
            logger.info("%s ready at %s", self.name, data.get("address"))
        if self._on_message is not None:
            self._on_message(kind, data)

    def child(self) -> ChildProcess:
        """What runs now: "starting" until the process says it listens (a worker: has registered), then "running"."""
        if not self.pid:
            return ChildProcess(self.name, self.role, 0, "starting")
        wall, began = self._began
        return ChildProcess(
            self.name,
            self.role,
            self.pid,
            "running" if self.address else "starting",
            started_at=wall,
            uptime_s=time.monotonic() - began,
            detail=self.address,
        )

    async def stop(self) -> None:
        """End the child now and keep it from starting again; waits until it is gone."""
        self._stopping.set()
        self._fail_ready(DaskError(f"{self.name} was stopped"))
        await asyncio.wait_for(self._idle.wait(), STOP_WAIT_S + 5)
