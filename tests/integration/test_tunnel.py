"""Tunnels between two real nodes: HTTP, a WebSocket and raw bytes reach a port on the peer's 127.0.0.1 through
``noizylab forward``; the peer refuses without its ``tunnel`` permission and a rule for the port, in one line; a
hostile peer reaches nothing else; a restarted peer is found again; unpairing closes what was open.

Alpha forwards, beta serves. The servers the tunnels lead to run in this test process (``tunnel_support``), so
both nodes see them on 127.0.0.1 and a tunnel's local port always falls back (the remote number is taken here).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop._proto import noizylab_tunnel_pb2_grpc as tpb_grpc
from noizylab_desktop.core.transport import secure_channel
from tests.conftest import NodeProcess, start_all, wait_for, within
from tests.integration.tunnel_support import PAGE, SOURCE_BYTES, Targets, exchange, targets


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    root: Path = tmp_path_factory.mktemp("tunnel")
    alpha, beta = NodeProcess(root / "alpha", "alpha"), NodeProcess(root / "beta", "beta")
    try:
        start_all(alpha, beta)
        beta.join(alpha.invite())
        wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
        wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online")
        yield alpha, beta
    finally:
        alpha.stop()
        beta.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Targets]:
    with targets() as found:
        yield found


# What a connection whose reader does not read may take from its source before the source waits: the kernel's socket
# buffers on both machines, gRPC's flow-control windows, one buffer and one frame at each node.
HELD_BYTES = 48 * 1024 * 1024


def forward(alpha: NodeProcess, port: int) -> int:
    """``noizylab forward beta PORT`` on alpha; the local port it chose."""
    return int(alpha.json("forward", "beta", str(port))["local_port"])


def tunnel(alpha: NodeProcess, port: int) -> dict[str, Any]:
    return next(t for t in alpha.json("tunnels") if t["remote_port"] == port)


def test_http_and_a_websocket_reach_the_peer_through_a_tunnel(
    grid: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = grid
    beta.cli("tunnel", "allow", "alpha", str(servers.http))
    local = forward(alpha, servers.http)
    assert local != servers.http  # taken by the server itself, on this one machine: a fallback
    with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=20) as reply:
        assert reply.read() == PAGE

    async def chat() -> list[str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"http://127.0.0.1:{local}/ws") as ws:
            answers = []
            for word in ("hello", "tunnel"):
                await ws.send_str(word)
                answers.append((await ws.receive(timeout=20)).data)
            return answers

    assert asyncio.run(within(chat(), 30, "the WebSocket's echoes")) == ["echo: hello", "echo: tunnel"]
    row = tunnel(alpha, servers.http)
    assert row["peer"] == "beta" and row["local_port"] == local and row["bind"] == "127.0.0.1"
    assert row["state"] in ("listening", "open") and row["bytes_in"] > len(PAGE) and row["total_connections"] >= 2
    assert "beta" in alpha.cli("tunnels").stdout


def test_a_large_transfer_arrives_whole_and_raw_bytes_echo(
    grid: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = grid
    for port in (servers.sink, servers.echo):
        beta.cli("tunnel", "allow", "alpha", str(port))
    sink, echo = forward(alpha, servers.sink), forward(alpha, servers.echo)
    data = os.urandom(48 * 1024 * 1024)
    assert exchange(sink, data, timeout=60).decode() == hashlib.sha256(data).hexdigest()
    assert exchange(echo, b"\x00raw\xffbytes" * 100) == b"\x00raw\xffbytes" * 100
    assert servers.peers and set(servers.peers) == {"127.0.0.1"}


def test_a_reader_that_does_not_read_holds_the_sender_back_and_then_gets_every_byte_in_order(
    grid: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = grid
    beta.cli("tunnel", "allow", "alpha", str(servers.source))
    local = forward(alpha, servers.source)
    source = servers.sourced
    with socket.create_connection(("127.0.0.1", local), timeout=60) as s:
        # Nobody reads: the source is held back once the sockets, both nodes and the stream hold what they may.
        wait_for(
            lambda: source.held_since is not None and time.monotonic() - source.held_since > 1.0,
            30,
            "the source to be held back by the reader that does not read",
        )
        assert source.sent <= HELD_BYTES, f"the tunnel took {source.sent} bytes from a source nobody read"
        received = bytearray()
        while chunk := s.recv(1 << 20):
            received += chunk
    assert len(received) == SOURCE_BYTES
    assert hashlib.sha256(received).digest() == hashlib.sha256(source.data).digest()


def test_the_fallback_local_port_is_remembered(grid: tuple[NodeProcess, NodeProcess], servers: Targets) -> None:
    alpha, beta = grid
    beta.cli("tunnel", "allow", "alpha", str(servers.echo))
    first = forward(alpha, servers.echo)
    alpha.cli("forward", "--stop", "beta", str(servers.echo))
    assert all(t["remote_port"] != servers.echo for t in alpha.json("tunnels"))
    assert forward(alpha, servers.echo) == first
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        chosen = s.getsockname()[1]
    alpha.cli("forward", "--stop", "beta", str(servers.echo))
    assert int(alpha.json("forward", "beta", f"{servers.echo}:{chosen}")["local_port"]) == chosen
    assert exchange(chosen, b"pinned") == b"pinned"


def test_a_peer_refuses_without_the_permission_or_a_rule_in_one_line(
    grid: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = grid
    alpha.cli("forward", "--stop", "beta", str(servers.http), check=False)
    beta.cli("tunnel", "deny", "alpha", str(servers.http))
    refused = alpha.cli("forward", "beta", f"{servers.http}:0", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"noizylab: error: beta does not allow tunnels to its port {servers.http} for this peer: allow it there "
        f"with `noizylab tunnel allow PEER {servers.http}`"
    ]
    beta.cli("deny", "alpha", "tunnel")
    refused = alpha.cli("forward", "beta", "7", check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "beta does not allow tunnel for this peer" in refused.stderr
    beta.cli("tunnel", "allow", "alpha", str(servers.http))  # turns the scope back on, as the rule needs it


class Hostile:
    """Alpha's own certificate, calling beta's ``Tunnel.Open`` directly, as a hostile peer would."""

    def __init__(self, alpha: NodeProcess, beta: NodeProcess) -> None:
        self.identity, self.cert, self.address = alpha.identity(), beta.identity().cert_pem, beta.grpc_address

    def __call__(self, *frames: tpb.TunnelFrame) -> tuple[grpc.StatusCode, str]:
        """The status a stream of ``frames`` ends with (``OK, "ready"`` when beta connected it)."""
        return asyncio.run(self._open(frames))

    async def _open(self, frames: tuple[tpb.TunnelFrame, ...]) -> tuple[grpc.StatusCode, str]:
        async def requests() -> AsyncIterator[tpb.TunnelFrame]:
            for frame in frames:
                yield frame
            if frames:
                # Stay open, as a peer waiting for "ready" does. Half-closing after the frames raced beta's refusal:
                # grpc.aio reports a client write that fails after the server's status as INTERNAL ("Internal error
                # from Core", grpc/grpc#36066) in place of the status beta sent.
                await asyncio.Event().wait()

        async with secure_channel(self.identity, self.cert, self.address) as channel:
            stream = tpb_grpc.TunnelStub(channel).Open(requests(), timeout=10)
            try:
                async for frame in stream:
                    if frame.ready:
                        return grpc.StatusCode.OK, "ready"
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or ""
            return grpc.StatusCode.OK, ""


def opening(port: int) -> tpb.TunnelFrame:
    return tpb.TunnelFrame(open=tpb.TunnelOpen(port=port))


def test_a_hostile_peer_reaches_only_allowed_ports_and_only_on_127_0_0_1(
    grid: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = grid
    beta.cli("allow", "alpha", "tunnel")  # the scope, but no rule for the ports below
    hostile_open = Hostile(alpha, beta)
    # The request can name a port and nothing else: no host, no address.
    assert {f.name for f in tpb.TunnelOpen.DESCRIPTOR.fields} == {"port", "probe"}
    for port in (22, servers.echo + 1, 50051, 65535):
        code, details = hostile_open(opening(port))
        assert code == grpc.StatusCode.PERMISSION_DENIED and f"its port {port}" in details and "\n" not in details
    for frames in (
        (tpb.TunnelFrame(data=b"GET / HTTP/1.0\r\n\r\n"),),
        (opening(0),),
        (opening(65536),),
        (opening(2**32 - 1),),
        (),
    ):
        assert hostile_open(*frames)[0] == grpc.StatusCode.INVALID_ARGUMENT
    with targets("127.0.0.2") as elsewhere:  # loopback, but not 127.0.0.1: a tunnel never goes there
        beta.cli("tunnel", "allow", "alpha", str(elsewhere.echo))
        code, details = hostile_open(opening(elsewhere.echo))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "(on 127.0.0.1)" in details
        assert elsewhere.peers == []
        beta.cli("tunnel", "deny", "alpha", str(elsewhere.echo))
    beta.cli("deny", "alpha", "tunnel")
    code, details = hostile_open(opening(servers.http))  # a rule without the scope opens nothing
    assert code == grpc.StatusCode.PERMISSION_DENIED and "does not allow tunnel for this peer" in details
    beta.cli("allow", "alpha", "tunnel")


def test_unpair_closes_open_tunnel_connections_within_5_s(
    grid: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = grid
    beta.cli("tunnel", "allow", "alpha", str(servers.echo))
    local = forward(alpha, servers.echo)
    with socket.create_connection(("127.0.0.1", local), timeout=20) as s:
        s.sendall(b"before")
        assert s.recv(100) == b"before"
        beta.cli("unpair", "alpha")
        s.settimeout(5)
        assert s.recv(100) == b""  # closed by alpha once beta ended the stream
    alpha.cli("unpair", "beta")
    wait_for(lambda: alpha.json("tunnels") == [], 5, "alpha to close its tunnels to beta")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", local), timeout=5).close()


def test_a_tunnel_resumes_when_the_peer_restarts_and_survives_its_own_restart(
    paired: tuple[NodeProcess, NodeProcess], servers: Targets
) -> None:
    alpha, beta = paired
    beta.cli("tunnel", "allow", "alpha", str(servers.echo))
    local = forward(alpha, servers.echo)
    with socket.create_connection(("127.0.0.1", local), timeout=20) as s:
        s.sendall(b"one")
        assert s.recv(100) == b"one"
        beta.stop()
        s.settimeout(20)
        assert s.recv(100) == b""  # the stream died with beta; the connection closes, the listener stays
    beta.start()  # on a new port: alpha learns it from beta's heartbeats
    assert exchange(local, b"two", timeout=40) == b"two"
    alpha.stop()
    alpha.start()
    row = wait_for(lambda: next(iter(alpha.json("tunnels")), None), what="the tunnel back after alpha's restart")
    assert row["local_port"] == local
    assert exchange(local, b"three", timeout=40) == b"three"
