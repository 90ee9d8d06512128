"""Soak qasync over an offscreen QApplication: loop round trips of every kind the app uses, and mTLS gRPC calls.

PySide6 6.12.0 with qasync dies with ``Fatal Python error: none_dealloc`` after a few hundred loop round trips, so
this runs as its own process (``test_soak.py``): a crash shows as its exit status. Both loads run at once, as in
the tray, where Qt events, asyncio callbacks and gRPC share one thread. Prints one JSON object with the counts.

Usage: ``QT_QPA_PLATFORM=offscreen python soak_script.py [ROUND_TRIPS] [GRPC_CALLS]``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import queue
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import PySide6
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core import transport
from noizylab_desktop.core.identity import Identity, make_certificate, make_ssh_key
from noizylab_desktop.core.sessions import Sessions
from noizylab_desktop.core.trust import TrustStore
from noizylab_desktop.ui.qt_async import async_slot, runner

HOST = "127.0.0.1"
CONCURRENCY = 50
GET_INFO = "/noizylab.grid.v1.Node/GetInfo"


class Echo(QObject):
    """A Qt signal answered by an ``async_slot``: the path every awaiting tray slot takes."""

    asked = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.asked.connect(self.answer)

    @async_slot(int)
    async def answer(self, n: int) -> None:
        await asyncio.sleep(0)
        self.waiting.pop(n).set_result(n)


class Worker(threading.Thread):
    """A thread that answers through ``call_soon_threadsafe``, as the capture and watcher threads will."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(daemon=True)
        self.loop = loop
        self.inbox: queue.Queue[tuple[int, asyncio.Future[int]] | None] = queue.Queue()

    def run(self) -> None:
        while (job := self.inbox.get()) is not None:
            n, future = job
            self.loop.call_soon_threadsafe(future.set_result, n)


async def round_trips(total: int) -> Counter[str]:
    """``total`` trips through the loop, cycling over call_soon, sleep(0), QTimer, signal->slot and a thread."""
    loop = asyncio.get_running_loop()
    echo, worker = Echo(), Worker(loop)
    worker.start()

    async def call_soon(n: int) -> int:
        future: asyncio.Future[int] = loop.create_future()
        loop.call_soon(future.set_result, n)
        return await future

    async def sleep0(n: int) -> int:
        await asyncio.sleep(0)
        return n

    async def qtimer(n: int) -> int:
        future: asyncio.Future[int] = loop.create_future()
        QTimer.singleShot(0, lambda: future.set_result(n))
        return await future

    async def signal_slot(n: int) -> int:
        future: asyncio.Future[int] = loop.create_future()
        echo.waiting[n] = future
        echo.asked.emit(n)
        return await future

    async def thread(n: int) -> int:
        future: asyncio.Future[int] = loop.create_future()
        worker.inbox.put((n, future))
        return await future

    kinds: list[tuple[str, Callable[[int], Awaitable[int]]]] = [
        ("call_soon", call_soon),
        ("sleep0", sleep0),
        ("qtimer", qtimer),
        ("signal_slot", signal_slot),
        ("thread", thread),
    ]
    done: Counter[str] = Counter()
    try:
        for n in range(total):
            name, trip = kinds[n % len(kinds)]
            assert await trip(n) == n
            done[name] += 1
    finally:
        worker.inbox.put(None)
        worker.join()
    return done


class Answers(pb_grpc.NodeServicer):
    """``GetInfo`` without a ``Node`` behind it."""

    async def GetInfo(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.NodeInfo:  # noqa: N802
        return pb.NodeInfo(id="soak", name="soak")


def make_identity(name: str) -> Identity:
    cert_pem, key_pem = make_certificate(name)
    ssh_private, ssh_public = make_ssh_key()
    return Identity(cert_pem=cert_pem, key_pem=key_pem, ssh_private_pem=ssh_private, ssh_public=ssh_public)


async def grpc_calls(total: int, folder: Path) -> dict[str, int]:
    """``total`` unary calls over mutual TLS through ``Guard``, ``CONCURRENCY`` at a time."""
    server_id, client_id = make_identity("soak-server"), make_identity("soak-client")
    trust = TrustStore(folder / "trust.sqlite", server_id.cert_pem)
    trust.add(client_id.cert_der, "soak-client", client_id.ssh_public, [])
    guard = transport.Guard(trust, Sessions())
    server = grpc.aio.server(interceptors=[guard], options=transport.SERVER_OPTIONS)
    pb_grpc.add_NodeServicer_to_server(Answers(), server)  # type: ignore[abstract]  # the stubs mark all methods abstract
    port = server.add_secure_port(f"{HOST}:0", transport.server_credentials(server_id, trust))
    await server.start()
    ok = errors = 0
    try:
        async with transport.secure_channel(client_id, server_id.cert_pem, f"{HOST}:{port}") as channel:
            stub = pb_grpc.NodeStub(channel)

            async def caller(calls: int) -> None:
                nonlocal ok, errors
                for _ in range(calls):
                    try:
                        reply = await stub.GetInfo(pb.Empty(), timeout=transport.DEFAULT_DEADLINE_S)
                    except grpc.aio.AioRpcError:
                        errors += 1
                    else:
                        ok += reply.name == "soak"

            share, rest = divmod(total, CONCURRENCY)
            await asyncio.gather(*(caller(share + (i < rest)) for i in range(CONCURRENCY)))
    finally:
        await server.stop(grace=None)
        trust.close()
    return {"ok": ok, "errors": errors, "served": guard.handled[GET_INFO], "refused": sum(guard.refused.values())}


async def soak(trips: int, calls: int) -> dict[str, object]:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="noizylab-soak-") as folder:
        done, rpc = await asyncio.gather(round_trips(trips), grpc_calls(calls, Path(folder)))
    return {
        "pyside6": PySide6.__version__,
        "qasync": importlib.metadata.version("qasync"),
        "round_trips": sum(done.values()),
        "round_trips_by_kind": dict(done),
        "grpc": rpc,
        "seconds": round(time.perf_counter() - began, 2),
    }


def main() -> int:
    trips = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    app = QApplication([sys.argv[0]])
    with runner(app) as loop:
        print(json.dumps(loop.run(soak(trips, calls))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
