"""Small wire helpers: task records, supervised children, needs, and a peer's gRPC errors as our one-line errors."""

from __future__ import annotations

import grpc

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.core.errors import NoizyLabError, TaskError, TransportError
from noizylab_desktop.core.rpc_errors import error_from_rpc
from noizylab_desktop.core.supervisor import ChildProcess
from noizylab_desktop.services.routing.model import Needs


def rpc_error(exc: grpc.aio.AioRpcError, where: str) -> NoizyLabError:
    """The NoizyLabError a peer sent, or one describing the failure."""
    return error_from_rpc(
        exc,
        where,
        unavailable=TransportError(f"{where} does not answer: see `noizylab peers`"),
        unauthenticated=TransportError(f"{where} does not accept this node any more: pair them again"),
        failed=TaskError,
    )


def child_proto(child: ChildProcess) -> tpb.SupervisedChild:
    return tpb.SupervisedChild(
        name=child.name, role=child.role, pid=child.pid, state=child.state, started_at=child.started_at,
        uptime_s=child.uptime_s, restarts=child.restarts, detail=child.detail,
    )  # fmt: skip


def needs_from(message: tpb.TaskNeeds) -> Needs:
    return Needs(
        gpu=message.gpu,
        min_free_vram_bytes=message.min_free_vram_bytes,
        min_memory_bytes=message.min_memory_bytes,
        os=message.os,
        labels=tuple(message.labels),
    )


def merge(a: Needs, b: Needs) -> Needs:
    """Both sets of needs at once (a typed job's own and the ones the asker added)."""
    return Needs(
        gpu=a.gpu or b.gpu,
        min_free_vram_bytes=max(a.min_free_vram_bytes, b.min_free_vram_bytes),
        min_memory_bytes=max(a.min_memory_bytes, b.min_memory_bytes),
        os=a.os or b.os,
        labels=tuple(dict.fromkeys((*a.labels, *b.labels))),
    )


class Tail:
    """The last ``size`` bytes of a task's output, for history."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray()

    def add(self, data: bytes) -> None:
        if self.size <= 0:
            return
        self.data += data[-self.size :]
        if len(self.data) > self.size:
            del self.data[: len(self.data) - self.size]

    def bytes(self) -> bytes:
        return bytes(self.data)
