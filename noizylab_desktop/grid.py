"""The Python API: ``async with Grid() as grid: await grid.execute_task(task_type=..., task_data=...)``, and
``client = await grid.dask_client()`` for the grid's Dask cluster (``noizylab dask up``).

It talks to this user's own running node (as the command line does), which routes the task, runs it where it fits
and sends the output back. Errors are the same one-line ``NoizyLabError`` subclasses the command line prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.local_client import LocalClient
from noizylab_desktop.services.dask.client import DaskClient
from noizylab_desktop.services.tasks.client import TasksClient


@dataclass(frozen=True)
class TaskResult:
    """How a task ended, where it ran, who decided that and why, and all of its output."""

    id: str
    node: str
    decided_by: str
    reason: str
    state: str  # "exited", "cancelled", "timed_out", "failed" or "lost"
    exit_code: int
    error: str
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.state == "exited" and self.exit_code == 0


class Grid:
    """This user's grid, reached through the node running for ``home`` (default: the platform's folder)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.paths = Paths.resolve(str(home) if home is not None else None)
        self._local = LocalClient(self.paths, load_settings(self.paths))
        self._client: TasksClient | None = None

    async def __aenter__(self) -> Grid:
        await self._local.__aenter__()
        self._client = TasksClient(self._local)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._local.__aexit__()

    @property
    def tasks(self) -> TasksClient:
        assert self._client is not None, "use Grid as `async with Grid() as grid:`"
        return self._client

    @property
    def dask(self) -> DaskClient:
        """Start, stop and inspect the grid's Dask cluster."""
        return DaskClient(self._local)

    async def dask_client(self, **options: Any) -> Any:
        """A connected asynchronous ``distributed.Client`` for the grid's running cluster, with a fresh client
        certificate from the scheduler's node (``options`` go to ``Client``, e.g. ``timeout="10s"``)."""
        return await self.dask.connect(**options)

    async def execute_task(
        self,
        task_type: str = "shell",
        task_data: Mapping[str, Any] | None = None,
        require_ai_decision: bool = False,
        *,
        on: str = "",
        timeout_s: float = 0.0,
        gpu: bool = False,
        labels: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str = "",
        idempotent: bool = False,
    ) -> TaskResult:
        """Run a typed job (``shell`` takes ``{"argv": [...]}`` or ``{"shell": "..."}``) where it fits; wait for it.

        ``require_ai_decision`` asks the AI advisor where one is configured; the deterministic scheduler decides
        otherwise, and ``TaskResult.decided_by`` says which did.
        """
        spec = tpb.TaskSpec(
            task_type="" if task_type == "shell" else task_type,
            timeout_s=timeout_s,
            env=dict(env or {}),
            cwd=cwd,
            idempotent=idempotent,
            needs=tpb.TaskNeeds(gpu=gpu, labels=list(labels)),
        )
        data = dict(task_data or {})
        if task_type == "shell":
            spec.argv.extend(data.get("argv", []))
            spec.shell = str(data.get("shell", ""))
        else:
            spec.task_data = json.dumps(data)
        request = tpb.SubmitRequest(spec=spec, on=on, require_ai_decision=require_ai_decision)
        accepted = tpb.TaskAccepted()
        end = tpb.TaskExit(exit_code=1, state="failed", error="the node ended the task without an exit status")
        out, err = bytearray(), bytearray()
        async for chunk in self.tasks.submit(request):
            which = chunk.WhichOneof("body")
            if which == "accepted":
                accepted = chunk.accepted
            elif which == "output":
                (out if chunk.output.stream == 1 else err).extend(chunk.output.data)
            elif which == "exit":
                end = chunk.exit
        return TaskResult(
            id=accepted.id,
            node=accepted.node_name,
            decided_by=accepted.decided_by,
            reason=accepted.reason,
            state=end.state,
            exit_code=end.exit_code,
            error=end.error,
            stdout=bytes(out),
            stderr=bytes(err),
        )
