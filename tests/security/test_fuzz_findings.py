"""What the property test (``test_fuzz_rpcs.py``) found, one focused test each: every one ended the call with a
status or details a peer should never see."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop._proto import noizylab_display_pb2_grpc as dpb_grpc
from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop._proto import noizylab_tasks_pb2_grpc as tpb_grpc
from noizylab_desktop.core.feature import FIRST_MESSAGE_S
from tests.conftest import wait_for
from tests.security.fuzz_grid import SHARE, Grid, grid_in
from tests.slowness import scaled

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    yield from grid_in(tmp_path_factory.mktemp("found"))


def test_an_rpc_the_node_does_not_implement_is_unimplemented_in_one_line(grid: Grid) -> None:
    """grpc.health.v1's List reached the servicer's stand-in, which raised NotImplementedError: INTERNAL, logged
    as an error."""
    health = health_pb2_grpc.HealthStub(grid.peers["nobody"].chan)
    with pytest.raises(grpc.RpcError) as caught:
        health.List(health_pb2.HealthListRequest(), timeout=scaled(10))
    assert (caught.value.code(), caught.value.details()) == (
        Code.UNIMPLEMENTED,
        "Health.List is not implemented on this node",
    )
    assert "Health.List failed" not in grid.log()


def test_a_line_break_in_a_peers_value_comes_back_escaped_on_one_line(grid: Grid) -> None:
    """A task ID (or a path) with a line break or a terminal escape was quoted raw: two lines of details (and, where
    the edge logs the error, a forged line in the node's log)."""
    tasks = tpb_grpc.TasksStub(grid.peers["mallory"].chan)
    with pytest.raises(grpc.RpcError) as caught:
        tasks.Cancel(tpb.TaskRef(id="x\nINFO forged\x1b[2J"), timeout=scaled(10))
    assert (caught.value.code(), caught.value.details()) == (
        Code.FAILED_PRECONDITION,
        "TaskError: no task x\\nINFO forged\\x1b[2J of yours runs on host",
    )


def test_a_peer_that_may_not_view_is_refused_whatever_its_first_message_says(grid: Grid) -> None:
    """A headless node has no one to ask: a peer without ``display`` got FAILED_PRECONDITION for an empty or odd
    first message ("must begin with a start message") instead of PERMISSION_DENIED, learning how a session starts."""
    display = dpb_grpc.DisplayStub(grid.peers["nobody"].chan)
    for first in (dpb.ViewerMessage(), dpb.ViewerMessage(start=dpb.StartSession())):
        with pytest.raises(grpc.RpcError) as caught:
            list(display.Session(iter([first]), timeout=scaled(5)))
        assert caught.value.code() == Code.PERMISSION_DENIED, caught.value.details()
        assert "does not allow display" in (caught.value.details() or "")


def test_a_folder_name_too_long_to_make_is_refused_in_one_line(grid: Grid) -> None:
    """``Offer`` made the folder unguarded: the OS's ENAMETOOLONG ended the call INTERNAL."""
    sync = spb_grpc.SyncStub(grid.peers["mallory"].chan)
    with pytest.raises(grpc.RpcError) as caught:
        sync.Offer(spb.OfferRequest(share_id="abcdefabcdef", remote="x" * 300), timeout=scaled(10))
    assert caught.value.code() == Code.FAILED_PRECONDITION
    assert (caught.value.details() or "").startswith("SyncError: cannot make the folder 'xxx")
    assert "File name too long" in (caught.value.details() or "")


def test_a_stream_its_caller_gave_up_on_ends_without_a_traceback(grid: Grid) -> None:
    """The caller's own side refused to send a message over 4 MiB and cancelled the call; the handler, reading an
    empty stream, tried to answer a call that was over, and gRPC logged "Unexpected [UsageError]" with a traceback."""
    sync = spb_grpc.SyncStub(grid.peers["mallory"].chan)
    logged = len(grid.log())
    chunk = spb.FileChunk(share_id=SHARE, path="big.bin", size=5 << 20, data=b"x" * (5 << 20))
    with pytest.raises(grpc.RpcError) as caught:
        sync.PutStream(iter([chunk]), timeout=scaled(10))
    assert caught.value.code() == Code.RESOURCE_EXHAUSTED
    wait_for(lambda: "Sync.PutStream ended without a status" in grid.log()[logged:], what="the handler to end")
    assert "Traceback" not in grid.log()[logged:]


def test_a_stream_that_never_sends_a_message_ends_when_its_caller_gives_up(grid: Grid) -> None:
    """A handler waiting for a first message that never came ended unlogged. It ends (gRPC cancels it with the call,
    or at the latest its 10 s wait for a first message ends) and says so in one line, with no traceback."""
    sync = spb_grpc.SyncStub(grid.peers["mallory"].chan)
    logged = len(grid.log())
    done = threading.Event()

    def silent() -> Iterator[spb.FileChunk]:
        done.wait(scaled(30))
        return
        yield  # a generator that sends nothing

    # Connected first: a deadline spent on the handshake would end the call before any handler ran.
    grpc.channel_ready_future(grid.peers["mallory"].chan).result(timeout=scaled(10))
    try:
        with pytest.raises(grpc.RpcError) as caught:
            sync.PutStream(silent(), timeout=scaled(3))
    finally:
        done.set()
    assert caught.value.code() == Code.DEADLINE_EXCEEDED
    wait_for(
        lambda: "Sync.PutStream ended without a status: " in grid.log()[logged:],
        timeout=FIRST_MESSAGE_S + 10,
        what="the handler to end",
    )
    assert "Traceback" not in grid.log()[logged:]
