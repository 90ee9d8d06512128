"""A paired peer without a permission gets none of that feature's peer-facing calls."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from tests.security.hostile import Hostile


def test_a_peer_without_sync_is_refused_every_sync_call(attacker: Callable[..., Hostile]) -> None:
    mallory = attacker()
    sync = mallory.stub(spb_grpc.SyncStub)
    ref = spb.ShareRef(share_id="0123456789ab")
    calls = {
        "Offer": lambda: sync.Offer(spb.OfferRequest(share_id="0123456789ab", remote="x"), timeout=10),
        "Index": lambda: sync.Index(ref, timeout=10),
        "Hash": lambda: sync.Hash(spb.HashRequest(share_id="0123456789ab", path="a"), timeout=10),
        "GetStream": lambda: sync.GetStream(spb.GetStreamRequest(share_id="0123456789ab", path="a"), timeout=10),
        "GetFiles": lambda: sync.GetFiles(spb.GetRequest(share_id="0123456789ab", paths=["a"]), timeout=10),
    }
    codes = {name: mallory.code_of(call) for name, call in calls.items()}
    assert codes == dict.fromkeys(calls, grpc.StatusCode.PERMISSION_DENIED)
