"""A peer's streamed and batched writes are bounded: by the disk's free space, by the share's quota, and by the
bytes that really arrived."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from tests.conftest import NodeProcess
from tests.security.hostile import Hostile

SHARE = "5a5a5a5a5a5a"
MiB = 1024 * 1024


@pytest.fixture
def host(make_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """The node under attack, serving peers' shares from ``tmp_path/served`` with a 4 MiB quota each."""
    return make_node("host", sync={"folder": str(tmp_path / "served"), "quota_gb": 4 / 1024}).start()


def refused(call: Callable[[], object]) -> str:
    """The one-line details of a call that must end FAILED_PRECONDITION."""
    with pytest.raises(grpc.RpcError) as exc:
        call()
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.value.details()  # type: ignore[attr-defined]
    details = str(exc.value.details())  # type: ignore[attr-defined]
    assert "\n" not in details
    return details


def test_a_stream_announcing_more_than_the_free_space_is_refused_at_once(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    sync = attacker("sync").stub(spb_grpc.SyncStub)
    sync.Offer(spb.OfferRequest(share_id=SHARE, remote="box"), timeout=20)
    huge = shutil.disk_usage(tmp_path).free + 1024 * MiB
    data = os.urandom(MiB)
    stream = [spb.FileChunk(share_id=SHARE, path="huge.bin", size=huge, hash=b"\x00" * 32), spb.FileChunk(data=data)]
    assert "does not fit" in refused(lambda: sync.PutStream(iter(stream), timeout=30))
    assert os.listdir(tmp_path / "served" / "box") == [], "no temp file was made"


def test_a_share_cannot_grow_past_its_quota_by_stream_or_by_batch(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    sync = attacker("sync").stub(spb_grpc.SyncStub)
    sync.Offer(spb.OfferRequest(share_id=SHARE, remote="box"), timeout=20)
    first = os.urandom(3 * MiB)
    ok = [spb.FileChunk(share_id=SHARE, path="a.bin", size=len(first), hash=hashlib.sha256(first).digest())]
    sync.PutStream(iter([*ok, spb.FileChunk(data=first)]), timeout=30)
    more = os.urandom(2 * MiB)
    big = [spb.FileChunk(share_id=SHARE, path="b.bin", size=len(more), hash=hashlib.sha256(more).digest())]
    assert "quota" in refused(lambda: sync.PutStream(iter([*big, spb.FileChunk(data=more)]), timeout=30))
    small = spb.SmallFile(path="c.bin", data=more, hash=hashlib.sha256(more).digest(), mtime_ns=1)
    assert "quota" in refused(lambda: sync.PutFiles(spb.PutRequest(share_id=SHARE, files=[small]), timeout=30))
    assert sorted(os.listdir(tmp_path / "served" / "box")) == ["a.bin"]


def test_a_stream_that_ends_short_or_skips_bytes_is_refused_without_reading_what_never_came(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    sync = attacker("sync").stub(spb_grpc.SyncStub)
    sync.Offer(spb.OfferRequest(share_id=SHARE, remote="box"), timeout=20)
    data = os.urandom(3 * MiB)
    head = spb.FileChunk(share_id=SHARE, path="x.bin", size=len(data), hash=hashlib.sha256(data).digest())
    short = [head, spb.FileChunk(offset=0, data=data[:MiB])]
    assert "ended after" in refused(lambda: sync.PutStream(iter(short), timeout=30))
    gap = [head, spb.FileChunk(offset=2 * MiB, data=data[2 * MiB :])]
    assert "never arrived" in refused(lambda: sync.PutStream(iter(gap), timeout=30))
    assert not (tmp_path / "served" / "box" / "x.bin").exists()
    temps = list((tmp_path / "served" / "box").iterdir())
    assert all(t.stat().st_size <= MiB for t in temps), "the temp holds only what arrived"
