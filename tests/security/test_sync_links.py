"""A peer allowed ``sync`` cannot reach past the host's sync folder through a link, offered or swapped in later."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from tests.conftest import NodeProcess
from tests.security.hostile import Hostile

SHARE = "a1b2c3d4e5f6"


@pytest.fixture
def host(make_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """The node under attack, serving peers' shares from ``tmp_path/served``."""
    return make_node("host", sync={"folder": str(tmp_path / "served")}).start()


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    """The error a call (streams read to the end) ends with; fails the test when it succeeds."""
    try:
        result = call()
        if hasattr(result, "__iter__"):
            for _ in result:  # type: ignore[attr-defined]
                pass
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call was accepted")


def one_line(exc: grpc.RpcError) -> str:
    details = exc.details() or ""  # type: ignore[attr-defined]
    assert details and "\n" not in details and "Traceback" not in details, details
    return str(details)


def test_an_offer_of_a_link_leading_out_of_the_sync_folder_is_refused(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    served, outside = tmp_path / "served", tmp_path / "outside"
    served.mkdir()
    outside.mkdir()
    (served / "etc").symlink_to("/etc")
    (served / "elsewhere").symlink_to(outside)
    mallory = attacker("sync")
    sync = mallory.stub(spb_grpc.SyncStub)
    for remote in ("etc", "elsewhere", "elsewhere/made-there"):
        exc = refusal(lambda r=remote: sync.Offer(spb.OfferRequest(share_id=SHARE, remote=r), timeout=20))
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, remote  # type: ignore[attr-defined]
        assert "sync folder" in one_line(exc)
    assert list(outside.iterdir()) == [], "nothing was made outside the sync folder"
    assert "Traceback" not in host.cli("logs", "-n", "400").stdout


def test_a_link_swapped_in_for_an_offered_folder_serves_nothing_outside(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    served, outside = tmp_path / "served", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for peers")
    mallory = attacker("sync")
    sync = mallory.stub(spb_grpc.SyncStub)
    sync.Offer(spb.OfferRequest(share_id=SHARE, remote="box"), timeout=20)
    (served / "box").rename(served / "box-was")
    (served / "box").symlink_to(outside)  # the folder offered is now a link out of the sync folder

    data = b"planted"
    small = spb.SmallFile(path="planted.txt", data=data, hash=hashlib.sha256(data).digest(), mtime_ns=1)
    stream = [
        spb.FileChunk(share_id=SHARE, path="planted.bin", size=len(data), hash=hashlib.sha256(data).digest()),
        spb.FileChunk(offset=0, data=data),
    ]
    ref = spb.ShareRef(share_id=SHARE)
    calls: dict[str, Callable[[], object]] = {
        "Index": lambda: sync.Index(ref, timeout=20),
        "Hash": lambda: sync.Hash(spb.HashRequest(share_id=SHARE, path="secret.txt"), timeout=20),
        "GetStream": lambda: sync.GetStream(spb.GetStreamRequest(share_id=SHARE, path="secret.txt"), timeout=20),
        "GetFiles": lambda: sync.GetFiles(spb.GetRequest(share_id=SHARE, paths=["secret.txt"]), timeout=20),
        "PutFiles": lambda: sync.PutFiles(spb.PutRequest(share_id=SHARE, files=[small]), timeout=20),
        "PutStream": lambda: sync.PutStream(iter(stream), timeout=20),
        "Watch": lambda: sync.Watch(ref, timeout=10),  # accepted, it would run until its deadline
    }
    codes = {}
    for name, call in calls.items():
        exc = refusal(call)
        codes[name] = exc.code()  # type: ignore[attr-defined]
        assert "sync folder" in one_line(exc), name
    assert codes == dict.fromkeys(calls, grpc.StatusCode.FAILED_PRECONDITION)
    assert sorted(os.listdir(outside)) == ["secret.txt"], "nothing was written through the link"
    assert "Traceback" not in host.cli("logs", "-n", "400").stdout
