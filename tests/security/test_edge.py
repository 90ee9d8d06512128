"""Out-of-range numbers from a peer end the call with ``INVALID_ARGUMENT`` and a one-line reason, and leave the node
up with no traceback in its log: a hostile peer holding every permission sends each value that once reached the
handlers and came back ``UNKNOWN`` with Python's exception text."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop._proto import noizylab_display_pb2_grpc as dpb_grpc
from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop._proto import noizylab_tasks_pb2_grpc as tpb_grpc
from tests.conftest import NodeProcess, wait_for
from tests.security.hostile import Hostile
from tests.xvfb import Xvfb

ALL = ("tasks", "sync", "display", "clipboard", "control")
SHARE = "0123456789ab"


@pytest.fixture
def host(screen: Xvfb, make_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """The node under attack, on a screen of its own (so input reaches a real X server) with a sync folder."""
    node = make_node("host", sync={"folder": str(tmp_path / "sync")})
    (tmp_path / "sync" / "shared").mkdir(parents=True)
    (tmp_path / "sync" / "shared" / "a.txt").write_text("hello")
    from tests.integration.display_support import host_display

    for _ in host_display(screen.display):
        node.start()
    return node


def rejection(call: Callable[[], Any]) -> grpc.RpcError:
    """The error ``call`` ends with (a stream read to its end); fails when it succeeds."""
    try:
        result = call()
        if hasattr(result, "__iter__"):
            for _ in result:
                pass
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


def assert_refused_cleanly(exc: grpc.RpcError, host: NodeProcess, *words: str) -> None:
    """INVALID_ARGUMENT, one line naming ``words``; the node still answers and logged no traceback."""
    details = exc.details() or ""
    assert (exc.code(), "\n" in details) == (grpc.StatusCode.INVALID_ARGUMENT, False), details
    assert all(word in details for word in words), details
    assert "Traceback" not in details and "Unexpected" not in details, details
    assert host.status()["name"] == "host"
    log = host.home / "logs" / "noizylab.log"
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")


def offered(mallory: Hostile) -> spb_grpc.SyncStub:
    sync = mallory.stub(spb_grpc.SyncStub)
    sync.Offer(spb.OfferRequest(share_id=SHARE, remote="shared"), timeout=20)
    return sync


def test_a_file_pushed_with_a_size_beyond_2_62_is_refused_as_invalid(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    sync = offered(attacker(*ALL))
    chunk = spb.FileChunk(share_id=SHARE, path="big.bin", size=2**64 - 1, hash=b"\0" * 32, offset=0, data=b"x")
    exc = rejection(lambda: sync.PutStream(iter([chunk]), timeout=20))
    assert_refused_cleanly(exc, host, "size")
    assert not (host.home.parent / "sync" / "shared" / "big.bin").exists()


def test_a_file_pulled_from_an_offset_of_2_63_is_refused_as_invalid(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    sync = offered(attacker(*ALL))
    request = spb.GetStreamRequest(share_id=SHARE, path="a.txt", offset=2**63)
    exc = rejection(lambda: sync.GetStream(request, timeout=20))
    assert_refused_cleanly(exc, host, "offset")


def test_a_task_with_an_environment_key_holding_an_equals_sign_is_refused_as_invalid(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    tasks = attacker(*ALL).stub(tpb_grpc.TasksStub)
    spec = tpb.TaskSpec(id="t-env", argv=["true"], env={"A=B": "c"})
    exc = rejection(lambda: tasks.Execute(spec, timeout=20))
    assert_refused_cleanly(exc, host, "env", "A=B")


def test_a_task_with_a_nan_timeout_is_refused_as_invalid(host: NodeProcess, attacker: Callable[..., Hostile]) -> None:
    tasks = attacker(*ALL).stub(tpb_grpc.TasksStub)
    exc = rejection(lambda: tasks.Execute(tpb.TaskSpec(id="t-nan", argv=["true"], timeout_s=float("nan")), timeout=20))
    assert_refused_cleanly(exc, host, "timeout_s")


def test_a_pointer_move_to_nan_ends_the_viewing_session_as_invalid(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    display = attacker(*ALL).stub(dpb_grpc.DisplayStub)
    informed, ended = threading.Event(), threading.Event()

    def messages() -> Iterator[dpb.ViewerMessage]:
        yield dpb.ViewerMessage(start=dpb.StartSession(control=True))
        informed.wait(30)
        yield dpb.ViewerMessage(input=dpb.InputEvent(move=dpb.PointerMove(x=float("nan"), y=10)))
        ended.wait(30)  # keep our side open: the host must be the one that ends the session

    def session() -> Iterator[dpb.HostMessage]:
        try:
            for message in display.Session(messages(), timeout=30):
                if message.HasField("info"):
                    informed.set()
                yield message
        finally:
            ended.set()

    exc = rejection(session)
    assert informed.is_set(), "the session never started"
    assert_refused_cleanly(exc, host, "x")
    wait_for(lambda: host.json("status") is not None, what="the host to answer after the session")
