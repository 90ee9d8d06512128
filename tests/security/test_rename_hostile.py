"""A peer renaming itself through its heartbeats: it can rename only itself, never to this node's name or another
peer's (it gets a suffix, as at pairing), and a name with a control character is ignored."""

from __future__ import annotations

import time
from collections.abc import Callable

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from tests.conftest import NodeProcess, wait_for
from tests.security.hostile import Hostile


def beat(peer: Hostile, name: str) -> None:
    """One heartbeat to the host that says the sender is called ``name``."""
    request = pb.HeartbeatRequest(sender_id=peer.identity.node_id, grpc_port=0, sent_at=time.time(), sender_name=name)
    peer.stub(pb_grpc.NodeStub).Heartbeat(request, timeout=10)


def names(host: NodeProcess) -> set[str]:
    return {p["name"] for p in host.json("peers")}


def test_a_peer_renames_only_itself_and_never_onto_a_name_already_held(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    mallory = attacker()
    attacker(name="carol")
    assert names(host) == {"mallory", "carol"}
    mallory.me.stop()  # only the raw beats below speak for mallory now
    wait_for(lambda: not (host.peer("mallory") or {}).get("online"), 20, "the host to see mallory's node gone")

    # The host takes the name before it answers the beat: once ``beat`` returns, the rename is done.
    beat(mallory, "carol")
    assert names(host) == {"carol-2", "carol"}
    beat(mallory, "host")
    assert names(host) == {"host-2", "carol"}  # the host's own name is taken too
    beat(mallory, "evil\x1b[31m")
    beat(mallory, "")
    assert names(host) == {"host-2", "carol"}
