"""``Node.Unpaired``: a peer can say only that it removed this node itself; it cannot mark or forget another peer."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from tests.conftest import NodeProcess, wait_for
from tests.security.hostile import Hostile, channel, stranger


def test_a_hostile_peer_calling_unpaired_marks_only_itself(host: NodeProcess, attacker: Callable[..., Hostile]) -> None:
    mallory = attacker()
    attacker(name="carol")
    wait_for(lambda: (host.peer("carol") or {}).get("online"), 20, "the host to see carol online")
    # The request names no one: the caller is the certificate it showed.
    assert pb.Empty.DESCRIPTOR.fields == []

    node = mallory.stub(pb_grpc.NodeStub)
    assert mallory.code_of(lambda: node.Unpaired(pb.Empty(), timeout=10)) == grpc.StatusCode.OK
    assert mallory.code_of(lambda: node.Unpaired(pb.Empty(), timeout=10)) == grpc.StatusCode.OK

    peers = {p["name"]: p for p in host.json("peers")}
    assert set(peers) == {"mallory", "carol"}  # nobody was forgotten
    assert peers["mallory"]["removed_at"] and not peers["mallory"]["online"]
    assert peers["carol"]["removed_at"] is None and peers["carol"]["online"]
    # It gained nothing: what it may call is what it could before.
    assert mallory.code_of(lambda: node.GetInfo(pb.Empty(), timeout=10)) == grpc.StatusCode.OK


def test_a_stranger_cannot_reach_unpaired(host: NodeProcess) -> None:
    chan = channel(stranger(), host)
    try:
        pb_grpc.NodeStub(chan).Unpaired(pb.Empty(), timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE
    else:
        raise AssertionError("a stranger's Unpaired was answered")
    finally:
        chan.close()
