"""The tasks service as the command line, the tray's helpers and the Python API see it: streams and one-line errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop._proto import noizylab_tasks_pb2_grpc as tpb_grpc
from noizylab_desktop.core.local_client import LocalClient


def record_dict(record: tpb.TaskRecord) -> dict[str, Any]:
    """A history row for ``--json``."""
    return {
        "id": record.id,
        "role": record.role,
        "asker": record.asker,
        "runner": record.runner,
        "command": record.command,
        "decided_by": record.decided_by,
        "reason": record.reason,
        "state": record.state,
        "exit_code": record.exit_code,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "error": record.error,
        "tail": record.tail.decode("utf-8", "replace"),
    }


def child_dict(child: tpb.SupervisedChild) -> dict[str, Any]:
    """A supervised child process for ``tasks --json``: a row with ``role`` "supervised" after the task rows."""
    return {
        "id": child.name,
        "role": "supervised",
        "name": child.name,
        "description": child.role,
        "pid": child.pid,
        "state": child.state,
        "started_at": child.started_at,
        "uptime_s": round(child.uptime_s, 1),
        "restarts": child.restarts,
        "detail": child.detail,
    }


class TasksClient:
    """``TasksClient(local)``: submit, follow, list and cancel tasks through this user's own node."""

    def __init__(self, local: LocalClient) -> None:
        self.local = local
        self.stub = tpb_grpc.TasksStub(local.channel)
        self.call: grpc.aio.UnaryStreamCall | None = None

    async def submit(self, request: tpb.SubmitRequest) -> AsyncIterator[tpb.TaskChunk]:
        """The task's chunks: accepted, output and notices, then its exit."""
        self.call = self.stub.Submit(request)
        try:
            async for chunk in self.call:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                raise
            raise self.local.error(exc) from exc

    async def submit_batch(self, requests: list[tpb.SubmitRequest]) -> list[tpb.TaskAccepted]:
        reply = await self.local.call(self.stub.SubmitBatch, tpb.TaskBatch(tasks=requests), timeout=60.0)
        assert isinstance(reply, tpb.TaskBatchReply)
        return list(reply.accepted)

    async def cancel(self, ref: str) -> tpb.CancelReply:
        reply = await self.local.call(self.stub.Cancel, tpb.TaskRef(id=ref))
        assert isinstance(reply, tpb.CancelReply)
        return reply

    async def list(self, limit: int = 50) -> list[tpb.TaskRecord]:
        return list((await self.listing(limit)).tasks)

    async def listing(self, limit: int = 50) -> tpb.TaskList:
        """The ``limit`` most recent tasks and the node's supervised child processes (a Dask scheduler or worker)."""
        reply = await self.local.call(self.stub.List, tpb.TaskListRequest(limit=limit))
        assert isinstance(reply, tpb.TaskList)
        return reply

    async def get(self, ref: str) -> tpb.TaskRecord:
        reply = await self.local.call(self.stub.Get, tpb.TaskRef(id=ref))
        assert isinstance(reply, tpb.TaskRecord)
        return reply
