"""The event stream: a paired peer sees the grid's public health and news about itself, never the owner's secrets.

Invite codes with their one-time secret, task commands and output, share folders and file names, and other peers'
pairing news stay with this node's own user (its command line and tray, holding the node's own certificate).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.identity import Identity
from tests.conftest import NodeProcess, wait_for
from tests.security.hostile import Hostile, channel
from tests.slowness import scaled

SECRET_OUTPUT = "hunter2-task-output"
SECRET_FOLDER = "plans-for-bob"


class Watch:
    """One caller's ``WatchEvents`` stream on a node, read into a list by a thread."""

    def __init__(self, identity: Identity, target: NodeProcess) -> None:
        self.chan = channel(identity, target)
        self.stream = pb_grpc.NodeStub(self.chan).WatchEvents(pb.EventFilter(), timeout=scaled(180))
        self.stream.initial_metadata()  # the node subscribed: every event from now on is offered to this stream
        self.events: list[pb.Event] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                self.events.append(event)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    def kinds(self) -> list[str]:
        return [e.kind for e in list(self.events)]

    def text(self) -> str:
        """Everything the stream carried, as one string to search for secrets."""
        return "\n".join(f"{e.kind} {dict(e.fields)}" for e in list(self.events))

    def wait(self, kind: str, what: str, **fields: str) -> pb.Event:
        def found() -> pb.Event | None:
            matches = (e for e in list(self.events) if e.kind == kind)
            return next((e for e in matches if all(e.fields.get(k) == v for k, v in fields.items())), None)

        return wait_for(found, timeout=60, what=what)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.stream.cancel()
        self._reader.join(timeout=10)
        self.chan.close()


@pytest.fixture
def watch() -> Iterator[Callable[[Identity, NodeProcess], Watch]]:
    opened: list[Watch] = []

    def open_watch(identity: Identity, target: NodeProcess) -> Watch:
        opened.append(Watch(identity, target))
        return opened[-1]

    yield open_watch
    for w in opened:
        w.close()


def test_a_peer_without_permissions_sees_public_health_and_news_about_itself_only(
    host: NodeProcess,
    attacker: Callable[..., Hostile],
    watch: Callable[[Identity, NodeProcess], Watch],
    tmp_path: Path,
) -> None:
    mallory = attacker()
    peer_stream, own_stream = watch(mallory.identity, host), watch(host.identity(), host)

    code = host.invite()
    host.cli("run", "--on", "self", "--", "sh", "-c", f"echo {SECRET_OUTPUT}")
    bob = attacker(name="bob")
    bob.me.cli("allow", "host", "sync")
    (tmp_path / SECRET_FOLDER).mkdir()
    (tmp_path / SECRET_FOLDER / "salaries.txt").write_text("private\n")
    host.cli("share", "add", str(tmp_path / SECRET_FOLDER), "--peer", "bob")

    # The owner's own stream carries every secret, so each one was really published while mallory listened.
    mallory_id, bob_id = mallory.me.id, bob.me.id
    own_stream.wait("pairing.invite", "the owner's invite on its own stream", code=code)
    own_stream.wait("task.finished", "the owner's task to finish on its own stream")
    own_stream.wait("peer.paired", "bob's pairing on the owner's stream", peer_id=bob_id)
    own_stream.wait("peer.online", "bob to come online on the owner's stream", peer_id=bob_id)
    own_stream.wait("sync.state", "the owner's new share on its own stream")
    assert SECRET_OUTPUT in own_stream.text() and SECRET_FOLDER in own_stream.text()

    # News about mallory comes last. The stream is ordered, so once mallory has it, it has had every earlier event
    # it was going to get.
    host.cli("deny", "mallory", "tasks")
    peer_stream.wait("peer.permission", "mallory to hear of its own permission", peer_id=mallory_id, scope="tasks")
    own_stream.wait("peer.permission", "the owner to see mallory's permission too", peer_id=mallory_id)
    assert "peer.online" in peer_stream.kinds(), "mallory sees bob come online: the grid's public health"

    leaked = [k for k in peer_stream.kinds() if k.split(".")[0] in ("pairing", "task", "sync", "clipboard")]
    assert leaked == [], f"mallory received {leaked}"
    assert "peer.paired" not in peer_stream.kinds(), "another peer's pairing (and verification string) leaked"
    for secret in (code, SECRET_OUTPUT, SECRET_FOLDER, "salaries"):
        assert secret not in peer_stream.text(), f"{secret!r} reached a peer"
