"""The ``Node`` gRPC service peers call: info and capabilities, heartbeats, health, the event stream, and the notice
that a peer has unpaired this node."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.events import Event
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.transport import caller_fingerprint, peer_host

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node


def event_message(event: Event) -> pb.Event:
    """A bus event as sent on the wire."""
    return pb.Event(kind=event.kind, at=event.at, fields=event.fields())


class NodeApi(pb_grpc.NodeServicer):
    """What every paired peer may ask of this node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def GetInfo(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.NodeInfo:  # noqa: N802
        return self.node.info()

    async def Heartbeat(  # noqa: N802
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeartbeatReply:
        fp = caller_fingerprint(context)
        if fp is not None and fp != self.node.identity.fingerprint:
            self.node.registry.heard_from(fp, peer_host(context.peer()), request.grpc_port)
            self.node.registry.named(fp, request.sender_name)
            if request.pins_keys:
                self.node.registry.pins_keys(fp)
            self.node.rotator.heard(fp)
        return pb.HeartbeatReply(
            id=self.node.identity.node_id, received_at=time.time(), load=self.node.load(), pins_keys=True
        )

    async def Health(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.HealthReply:  # noqa: N802
        return pb.HealthReply(serving=True, services=self.node.supervisor.running(), uptime_s=self.node.uptime_s())

    async def Unpaired(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.Empty:  # noqa: N802
        # Who is taken from the caller's certificate (the Guard let in only this node and its paired peers): a peer
        # can mark only itself, and the request names no one.
        fp = caller_fingerprint(context)
        if fp is not None and fp != self.node.identity.fingerprint:
            self.node.registry.removed_us(fp, time.time())
        return pb.Empty()

    def audience_of(self, context: grpc.aio.ServicerContext) -> Callable[[Event], bool] | None:
        """Which events the caller may see: all for this node's own user (None), else by each event's audience."""
        fp = caller_fingerprint(context)
        if fp == self.node.identity.fingerprint:
            return None
        peer_id = format_id(fp) if fp is not None else ""
        return lambda event: event.visible_to(peer_id)

    async def WatchEvents(  # noqa: N802
        self, request: pb.EventFilter, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Event]:
        kinds = set(request.kinds)
        # Filtered as they are queued, so a slow peer's "dropped" count tells it nothing about events it may not see.
        with self.node.bus.subscribe(where=self.audience_of(context)) as subscription:
            # Tell the caller the stream is live now, not at the first event: it can rely on seeing what follows.
            await context.send_initial_metadata(())
            async for event in subscription:
                if not kinds or event.kind in kinds:
                    yield event_message(event)
