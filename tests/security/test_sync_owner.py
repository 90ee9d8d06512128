"""A share belongs to the peer that made it: another peer cannot be served that folder, or one around or in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from tests.conftest import NodeProcess
from tests.security.hostile import Hostile

BOBS, TRUDYS = "b0b0b0b0b0b0", "7e7e7e7e7e7e"


@pytest.fixture
def host(make_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """The node under attack, serving peers' shares from ``tmp_path/served``."""
    return make_node("host", sync={"folder": str(tmp_path / "served")}).start()


def offer(peer: Hostile, share_id: str, remote: str) -> grpc.StatusCode:
    sync = peer.stub(spb_grpc.SyncStub)
    return peer.code_of(lambda: sync.Offer(spb.OfferRequest(share_id=share_id, remote=remote), timeout=20))


def test_a_peer_cannot_offer_itself_the_folder_of_another_peers_share(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    bob, trudy = attacker("sync", name="bob"), attacker("sync", name="trudy")
    assert offer(bob, BOBS, "team/work") == grpc.StatusCode.OK
    (tmp_path / "served" / "team" / "work" / "plan.txt").write_text("bob's")
    (tmp_path / "served" / "alias").symlink_to(tmp_path / "served" / "team")
    for remote in ("team/work", "team", "team/work/inner", "alias", "alias/work"):
        assert offer(trudy, TRUDYS, remote) == grpc.StatusCode.PERMISSION_DENIED, remote
    sync = trudy.stub(spb_grpc.SyncStub)
    with pytest.raises(grpc.RpcError) as refused:
        sync.Offer(spb.OfferRequest(share_id=TRUDYS, remote="team/work"), timeout=20)
    details = refused.value.details()  # type: ignore[attr-defined]
    assert "another peer's share" in details and "\n" not in details
    assert offer(trudy, TRUDYS, "trudy") == grpc.StatusCode.OK, "a folder of its own is fine"
    assert offer(bob, BOBS, "team/work") == grpc.StatusCode.OK, "the owner offers its folder again"
    assert "Traceback" not in host.cli("logs", "-n", "400").stdout


def test_writes_to_a_share_the_peer_never_offered_open_nothing_on_the_host(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    mallory = attacker("sync")
    sync = mallory.stub(spb_grpc.SyncStub)
    made_up = [f"{n:012x}" for n in range(1, 6)]
    for share_id in made_up:
        put = spb.PutRequest(share_id=share_id, files=[spb.SmallFile(path="x.txt", data=b"x")])
        assert mallory.code_of(lambda r=put: sync.PutFiles(r, timeout=20)) == grpc.StatusCode.FAILED_PRECONDITION
    state = host.home / "state" / "sync"
    assert not [p.name for p in state.glob("offer-*.sqlite")], "no index is made for a share nobody offered"
