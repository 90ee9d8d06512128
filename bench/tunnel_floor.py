"""The tunnel's floor: what one grpc.aio bidirectional stream over the node's mutual TLS carries between two processes
with no sockets at either end, measured in the same run as the tunnel (``bench/tunnel.py``).

The server (a child process) serves ``Floor/Sink`` (reads messages to the end, answers how many bytes) and
``Floor/Echo`` (writes back each message) with the node's server options and ``transport.server_credentials``; the
client here opens ``transport.secure_channel`` as a node does. The upload is 1 MiB data frames
(``wire.data_frame``), the round trips 64-byte ones. What the tunnel adds over this is its own: two local sockets and
the pump; what this costs is gRPC's (HTTP/2, TLS, the hops between the asyncio loop and gRPC's threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from bench.rpc import make_identity, make_trust
from noizylab_desktop.core import transport
from noizylab_desktop.core.identity import Identity
from noizylab_desktop.services.tunnel import wire

HOST = "127.0.0.1"
SERVICE = "noizylab.bench.Floor"
CHUNK = 1 << 20


async def _sink(frames: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    total = 0
    async for frame in frames:
        total += len(frame)
    yield str(total).encode()


async def _echo(frames: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for frame in frames:
        yield frame


def _serve(
    conn: multiprocessing.connection.Connection, pems: tuple[bytes, bytes, bytes, str], client: tuple[bytes, str]
) -> None:
    """Child process: the two methods over mTLS, for the client (its certificate, its SSH key), until the parent
    writes to ``conn``."""
    server_id = Identity(*pems)

    async def serve() -> None:
        with tempfile.TemporaryDirectory(prefix="noizylab-bench-floor-") as folder:
            trust = make_trust(Path(folder), server_id, *client)
            server = grpc.aio.server(options=transport.SERVER_OPTIONS)
            handlers = {
                "Sink": grpc.stream_stream_rpc_method_handler(_sink),
                "Echo": grpc.stream_stream_rpc_method_handler(_echo),
            }
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
            port = server.add_secure_port(f"{HOST}:0", transport.server_credentials(server_id, trust))
            await server.start()
            conn.send(port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(conn.fileno(), stop.set)
            try:
                await stop.wait()
            finally:
                loop.remove_reader(conn.fileno())
                await server.stop(grace=None)
                trust.close()

    asyncio.run(serve())


async def _client(port: int, me: Identity, server_cert: bytes, total: int, count: int) -> dict[str, Any]:
    async with transport.secure_channel(me, server_cert, f"{HOST}:{port}") as channel:
        frame = wire.data_frame(os.urandom(CHUNK))
        sink = channel.stream_stream(f"/{SERVICE}/Sink")()
        began = time.perf_counter()
        for _ in range(total // CHUNK):
            await sink.write(frame)
        await sink.done_writing()
        answer = await sink.read()
        rate = total / (time.perf_counter() - began)
        if int(answer) != total // CHUNK * len(frame):
            raise SystemExit(f"the floor's sink read {answer!r} bytes")
        echo = channel.stream_stream(f"/{SERVICE}/Echo")()
        message = wire.data_frame(b"x" * 64)
        times = []
        for i in range(100 + count):
            began = time.perf_counter()
            await echo.write(message)
            await echo.read()
            if i >= 100:  # the first 100 warm up, as the tunnel's do
                times.append((time.perf_counter() - began) * 1000)
        echo.cancel()
    return {
        "throughput_mib_s": rate / 2**20,
        "p50_ms": statistics.median(times),
        "p99_ms": statistics.quantiles(times, n=100)[98],
        "mean_ms": statistics.fmean(times),
    }


def measure(total: int, count: int) -> dict[str, Any]:
    """The floor's figures, keyed as ``bench/tunnel.py``'s paths are."""
    server_id, client_id = make_identity("bench-floor-server"), make_identity("bench-floor-client")
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    pems = (server_id.cert_pem, server_id.key_pem, server_id.ssh_private_pem, server_id.ssh_public)
    process = context.Process(
        target=_serve, args=(child, pems, (client_id.cert_pem, client_id.ssh_public)), name="bench-floor", daemon=True
    )
    process.start()
    try:
        if not parent.poll(60.0):
            raise RuntimeError("the floor's server process did not start within 60 s")
        port = int(parent.recv())
        return asyncio.run(_client(port, client_id, server_id.cert_pem, total, count))
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(10.0)
        if process.is_alive():
            process.kill()
