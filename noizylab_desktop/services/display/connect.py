"""The viewer's way to a peer's screen: ask our own node where the peer is and which certificate it shows, then open
a pinned mTLS channel straight to it with our node's identity (frames do not pass through our node)."""

from __future__ import annotations

import asyncio

import grpc

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop._proto import noizylab_display_pb2_grpc as dpb_grpc
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core import identity as identity_mod
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.core.local_client import LocalClient
from noizylab_desktop.core.transport import secure_channel


async def connect(paths: Paths, settings: Settings, peer: str) -> tuple[grpc.aio.Channel, str]:
    """A pinned mTLS channel straight to ``peer`` (its address and certificate come from our node) and its name."""
    async with LocalClient(paths, settings) as node:
        location = await node.call(dpb_grpc.DisplayStub(node.channel).Locate, pb.PeerRef(peer=peer))
    assert isinstance(location, dpb.PeerLocation)
    if not location.online or not location.address:
        raise DisplayError(f"{location.name} is offline: start its node, then view it again")
    identity = await asyncio.to_thread(identity_mod.load_for_client, paths, settings)
    channel = secure_channel(identity, location.cert_pem, location.address, pins_keys=location.pins_keys)
    return channel, location.name
