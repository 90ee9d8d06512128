"""Unpair and deny end what the peer holds open (issue #14, item 4).

The hostile peer holds an SSH connection to the host's SFTP server, with one file open for writing and one for
reading, and a ``Sync.Watch`` stream. Then the host's owner unpairs it, or denies it ``sync``: the open files' next
read and write fail, the connection closes within the 5 s the design promises, no new channel opens on it, and the
stream ends with a status that says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import grpc
import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop.core.transport import secure_channel
from tests.conftest import NodeProcess, within
from tests.security.hostile import Hostile
from tests.slowness import scaled

SHARE = "a1b2c3d4e5f6"
PROMISED_S = 5.0  # DESIGN.md: unpair, deny and revocation end a peer's streams and SSH sessions within 5 s


@pytest.fixture
def host(make_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """The node under attack, serving peers' shares from ``tmp_path/served``."""
    return make_node("host", sync={"folder": str(tmp_path / "served")}).start()


@dataclass
class Aftermath:
    """What the peer saw once the owner acted."""

    write: BaseException | None
    read: BaseException | None
    closed_after_s: float
    new_channel: BaseException | None
    new_connection: BaseException | None
    stream: grpc.aio.AioRpcError | None
    unary_after: grpc.aio.AioRpcError | None


async def failure(awaitable: Awaitable[object]) -> BaseException | None:
    """The SSH or SFTP error ``awaitable`` ends with, or None when it succeeds."""
    try:
        await awaitable
    except (asyncssh.Error, OSError) as exc:
        return exc
    return None


async def end_of(call: grpc.aio.UnaryStreamCall[spb.ShareRef, spb.Notice]) -> grpc.aio.AioRpcError | None:
    """Read a stream to its end: the error it ends with, or None when it ends OK."""
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


def offer_share(mallory: Hostile, tmp_path: Path) -> Path:
    """The peer offers a share (``served/box``) that holds a file it may read."""
    mallory.stub(spb_grpc.SyncStub).Offer(spb.OfferRequest(share_id=SHARE, remote="box"), timeout=20)
    box = tmp_path / "served" / "box"
    (box / "notes.txt").write_bytes(b"notes for the peer")
    return box


def hold_sessions_while(mallory: Hostile, owner_acts: Callable[[], object]) -> Aftermath:
    """Open an SFTP session and a Watch stream on the host, let the owner act, then see what still works."""
    port, host_cert, address = mallory.sftp_port(), mallory.target.identity().cert_pem, mallory.target.grpc_address

    async def scenario() -> Aftermath:
        conn = await mallory.ssh(port)
        try:
            sftp = await conn.start_sftp_client()
            planted = await sftp.open(f"/{SHARE}/planted.txt", "wb")
            await planted.write(b"before\n")
            notes = await sftp.open(f"/{SHARE}/notes.txt", "rb")
            assert await notes.read(6) == b"notes "
            async with secure_channel(mallory.identity, host_cert, address) as channel:
                watch = spb_grpc.SyncStub(channel).Watch(spb.ShareRef(share_id=SHARE), timeout=scaled(120))
                assert await within(watch.read(), 10, "the watch to say it is live") == spb.Notice()

                await asyncio.to_thread(owner_acts)
                acted_at = time.monotonic()
                closed = asyncio.ensure_future(conn.wait_closed())
                wrote = await failure(planted.write(b"after\n"))
                read = await failure(notes.read(6))
                await within(closed, PROMISED_S, "the host to close the SSH connection")
                closed_after_s = time.monotonic() - acted_at
                new_channel = await failure(conn.start_sftp_client())
                new_connection = await failure(mallory.ssh(port))
                stream = await within(end_of(watch), PROMISED_S, "the host to end the Watch stream")
                try:
                    await pb_grpc.NodeStub(channel).GetInfo(pb.Empty(), timeout=10)
                    unary_after = None
                except grpc.aio.AioRpcError as exc:
                    unary_after = exc
        finally:
            conn.close()
        return Aftermath(wrote, read, closed_after_s, new_channel, new_connection, stream, unary_after)

    return asyncio.run(scenario())


def test_unpair_ends_the_peers_sftp_session_and_streams_at_once(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    mallory = attacker("sync")
    box = offer_share(mallory, tmp_path)

    seen = hold_sessions_while(mallory, lambda: host.cli("unpair", "mallory"))

    assert isinstance(seen.write, asyncssh.Error), "the open file took a write after unpair"
    assert isinstance(seen.read, asyncssh.Error), "the open file gave a read after unpair"
    assert seen.closed_after_s < scaled(PROMISED_S)
    assert isinstance(seen.new_channel, asyncssh.Error), "a new channel opened on the old connection"
    assert isinstance(seen.new_connection, asyncssh.PermissionDenied), "a new connection got in"
    assert seen.stream is not None and seen.stream.code() == grpc.StatusCode.UNAUTHENTICATED
    assert seen.stream.details() == "this node is no longer paired with you"
    assert seen.unary_after is not None and seen.unary_after.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (box / "planted.txt").read_bytes() == b"before\n", "nothing written after unpair landed"
    assert "Traceback" not in host.cli("logs", "-n", "400").stdout


def test_deny_sync_ends_the_peers_sftp_session_and_sync_streams_only(
    host: NodeProcess, attacker: Callable[..., Hostile], tmp_path: Path
) -> None:
    mallory = attacker("sync")
    box = offer_share(mallory, tmp_path)

    seen = hold_sessions_while(mallory, lambda: host.cli("deny", "mallory", "sync"))

    assert isinstance(seen.write, asyncssh.Error), "the open file took a write after deny"
    assert isinstance(seen.read, asyncssh.Error), "the open file gave a read after deny"
    assert seen.closed_after_s < scaled(PROMISED_S)
    assert isinstance(seen.new_channel, asyncssh.Error), "a new channel opened on the old connection"
    assert isinstance(seen.new_connection, asyncssh.PermissionDenied), "a new connection got in"
    assert seen.stream is not None and seen.stream.code() == grpc.StatusCode.PERMISSION_DENIED
    assert seen.stream.details() == "this node no longer allows sync for you"
    assert seen.unary_after is None, "the peer is still paired: calls that need no sync still work"
    assert (box / "planted.txt").read_bytes() == b"before\n", "nothing written after deny landed"
    assert "Traceback" not in host.cli("logs", "-n", "400").stdout
