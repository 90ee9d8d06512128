"""What a feature (tasks, sync, clipboard, display, metrics) plugs into the node with.

The node builds each feature from the table in ``noizylab_desktop.node.features``, lets it add its gRPC services and
interceptors before the server starts, starts it after, and stops it before the server goes down. A feature reports
its own figures (``Figure``) so the metrics feature can export them without importing the feature.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import grpc

from noizylab_desktop.core.errors import PermissionRefusedError
from noizylab_desktop.core.rpc_errors import MAX_DETAILS as MAX_DETAILS  # re-exported from its old home
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.sessions import uses_scope
from noizylab_desktop.core.transport import caller_fingerprint

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext


@dataclass(frozen=True)
class Figure:
    """One exported figure, named the Prometheus way (base units, ``_total`` for counters).

    A histogram gives ``buckets`` as (upper bound, cumulative count) pairs, ending with ``+inf``, and ``value`` as
    the sum of the observations; ``count`` is the number of observations.
    """

    name: str
    help: str
    value: float
    kind: Literal["counter", "gauge", "histogram"] = "gauge"
    labels: Mapping[str, str] = field(default_factory=dict)
    buckets: Sequence[tuple[float, float]] = ()
    count: float = 0.0


class Feature(Protocol):
    """One capability of the node, with an explicit lifecycle."""

    name: str

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Register this feature's gRPC servicers (called before the server starts)."""

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        """Server interceptors to install after the node's Guard (usually none)."""

    def service_names(self) -> Sequence[str]:
        """Full gRPC service names, marked SERVING in grpc.health.v1."""

    async def start(self) -> None:
        """Start background work (after the gRPC server is up)."""

    async def stop(self) -> None:
        """Stop background work; idempotent."""

    def figures(self) -> Iterable[Figure]:
        """This feature's figures as they are now."""


class FeatureFactory(Protocol):
    """Builds a feature from what it may use of its node (a feature's class is one)."""

    def __call__(self, ctx: NodeContext) -> Feature: ...


async def require_self(ctx: NodeContext, context: grpc.aio.ServicerContext) -> None:
    """Abort unless the caller holds this node's own certificate (the local command line or tray)."""
    if caller_fingerprint(context) != ctx.identity.fingerprint:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "only this node's own user may control it")


async def require_permission(ctx: NodeContext, context: grpc.aio.ServicerContext, scope: str) -> bytes:
    """Abort unless the calling peer (or this node itself) may use ``scope``; returns the caller's fingerprint.

    A stream that passes relies on ``scope`` from then on: denying it to the peer ends the stream."""
    uses_scope(scope)
    fp = caller_fingerprint(context)
    if fp is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this node is not paired with you")
    assert fp is not None
    if fp != ctx.identity.fingerprint and not ctx.permissions.allowed(fp, scope):
        await abort_with(
            context,
            PermissionRefusedError(
                f"{ctx.settings.name} does not allow {scope} for this peer: allow it there with "
                f"`noizylab allow PEER {scope}` or from its tray"
            ),
        )
    return fp


M = TypeVar("M")
FIRST_MESSAGE_S = 10.0


async def first_message(messages: AsyncIterator[M], limit_s: float = FIRST_MESSAGE_S) -> M | None:
    """A client stream's first message, or None when it sent none within ``limit_s`` (or ended at once).

    A streaming handler that may refuse reads this before ``require_permission``: aborting while the peer is still
    writing its first message races that write, and grpc.aio then reports "Internal error from Core" in place of
    the refusal (grpc/grpc#36066). A peer refused is refused before its message is looked at."""
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(anext(aiter(messages), None), limit_s)
    return None
