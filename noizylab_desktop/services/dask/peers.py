"""Calls from this node's Dask feature to a peer's, with one-line errors, and where the cluster's processes listen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
import psutil

from noizylab_desktop._proto import noizylab_dask_pb2_grpc as dpb_grpc
from noizylab_desktop.core.errors import TransportError
from noizylab_desktop.core.rpc_errors import error_from_rpc

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.dask.settings import DaskSettings

WILDCARDS = ("", "0.0.0.0", "::")


async def call_peer(ctx: NodeContext, fp: bytes, method: str, request: Any, timeout: float) -> Any:
    """``Dask.<method>(request)`` on the paired peer ``fp``; its error as our own class, in one line."""
    state = next((s for s in ctx.registry.peers() if s.peer.fingerprint == fp), None)
    if state is None:
        raise TransportError("that node is no longer paired with this one")
    stub = dpb_grpc.DaskStub(ctx.registry.channel(state))
    try:
        return await getattr(stub, method)(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc, state.peer.name) from exc


def listen_host(ctx: NodeContext, config: DaskSettings) -> str:
    """Where the cluster's processes listen: ``[dask] host``, else the grid's own address (never all interfaces)."""
    if config.host:
        return config.host
    if ctx.settings.grpc_host not in WILDCARDS:
        return ctx.settings.grpc_host
    if ctx.settings.advertise:
        return ctx.settings.advertise[0]
    for name, addresses in psutil.net_if_addrs().items():
        stats = psutil.net_if_stats().get(name)
        if stats is not None and not stats.isup:
            continue
        for a in addresses:
            if a.family.name == "AF_INET" and not a.address.startswith("127."):
                return str(a.address)
    return "127.0.0.1"
