"""Two ``Node`` objects on one plain asyncio loop pair and follow each other's health."""

from __future__ import annotations

import asyncio
from pathlib import Path

from noizylab_desktop.core.config import Paths, Settings, save_settings
from noizylab_desktop.core.events import PeerOffline, PeerOnline, PeerPaired
from noizylab_desktop.node.node import Node


def _node(root: Path, name: str) -> Node:
    paths = Paths.resolve(root / name)
    paths.ensure()
    settings = Settings(name=name, grpc_host="127.0.0.1", advertise=("127.0.0.1",)).with_ports(0, 0, 0)
    save_settings(paths, settings)
    return Node(paths, settings)


async def _next(subscription: object, kind: type, timeout: float = 10.0) -> object:
    async def first() -> object:
        while True:
            event = await subscription.get()  # type: ignore[attr-defined]
            if isinstance(event, kind):
                return event

    return await asyncio.wait_for(first(), timeout)


def test_nodes_pair_see_each_other_and_notice_a_stop(tmp_path: Path) -> None:
    async def scenario() -> None:
        alpha, beta = _node(tmp_path, "alpha"), _node(tmp_path, "beta")
        await alpha.start()
        await beta.start()
        try:
            with alpha.bus.subscribe(PeerPaired, PeerOnline, PeerOffline) as alpha_events:
                code, _ = await alpha.create_invite([])
                waiting = asyncio.ensure_future(alpha.pairing.wait(code, 10))
                joined = await beta.join(code)
                made = await waiting
                assert joined.verification == made.verification
                assert (joined.peer_name, made.peer_name) == ("alpha", "beta")
                paired = await _next(alpha_events, PeerPaired)
                assert isinstance(paired, PeerPaired) and paired.peer_id == beta.identity.node_id
                online = await _next(alpha_events, PeerOnline)
                assert isinstance(online, PeerOnline) and online.name == "beta"
                assert [s.online for s in alpha.registry.peers()] == [True]
                await beta.stop()
                offline = await _next(alpha_events, PeerOffline)
                assert isinstance(offline, PeerOffline) and offline.name == "beta"
                status = alpha.status(pid=0)
                assert [(p.name, p.online) for p in status.peers] == [("beta", False)]
        finally:
            await beta.stop()
            await alpha.stop()

    asyncio.run(scenario())
