"""Health round trip over mutual TLS on loopback, beside the same call over an insecure channel (the anchor).

Run: ``.venv/bin/python bench/rpc.py`` (or ``make bench``); ``--quick`` for a short run, ``--json`` for machine output.
No keychain is needed: identities are made in memory and the trust store lives in a temporary folder.

What runs is the project's real path: ``identity.make_certificate`` + ``make_ssh_key`` -> ``Identity``, a ``TrustStore``
holding the client's certificate, a ``grpc.aio`` server with ``transport.Guard``, ``transport.SERVER_OPTIONS`` and
``transport.server_credentials``, and a client channel from ``transport.secure_channel`` with a deadline on each call.
The anchor serves the same servicers from a server without the interceptor on an insecure port, called through
``grpc.aio.insecure_channel`` with the same channel options.

Each cell is one topology (server and client on one loop, as inside a node; or the server in a second process, as
between two nodes), one event loop (plain asyncio, or the tray's qasync loop over an offscreen ``QApplication``, in
every process of the cell; ``qasync-stock`` is qasync's own loop, without the tray's batching) and one method (the
Node service's ``Health`` and the standard ``grpc.health.v1`` ``Check``). It measures:

- sequential latency: one call at a time; p50 and p99 are held against the targets;
- throughput: ``--concurrency`` callers at once; calls/s is held against the target, p50/p99 under load are queueing;
- CPU per call under load: user + system time of every process of the cell (client and server), per call. Unlike
  wall time it barely moves when other programs share the CPUs, so it is the steadiest ratio to the anchor.

Insecure and mTLS phases alternate as A-B-B-A halves, so drift on a busy machine hits both alike.
"""

from __future__ import annotations

import os

# gRPC's C core reads this once, when it is imported: keep its INFO lines (the refused stranger's failed handshake,
# GOAWAY at teardown) out of the tables. An explicit GRPC_VERBOSITY from the caller wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import multiprocessing.connection  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Coroutine, Iterator  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import grpc  # noqa: E402
import psutil  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

from noizylab_desktop._proto import noizylab_grid_pb2 as pb  # noqa: E402
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc  # noqa: E402
from noizylab_desktop.core import transport  # noqa: E402
from noizylab_desktop.core.identity import Identity, make_certificate, make_ssh_key  # noqa: E402
from noizylab_desktop.core.sessions import Sessions  # noqa: E402
from noizylab_desktop.core.trust import TrustStore  # noqa: E402

T = TypeVar("T")

TARGET_P50_MS = 0.8
TARGET_P99_MS = 2.0
TARGET_CALLS_PER_S = 3000.0
DESIGN_CLAIM = "2-5 ms"

LOOPS = ("asyncio", "qasync", "qasync-stock")
DEFAULT_LOOPS = ("asyncio", "qasync")
TOPOLOGIES = ("same-loop", "cross-process")
NODE_HEALTH = "Node/Health"
HEALTH_CHECK = "grpc.health.v1/Check"
METHODS = (NODE_HEALTH, HEALTH_CHECK)
INSECURE = "insecure"
MTLS = "mTLS+Guard"
MTLS_BARE = "mTLS no Guard"  # diagnostic (--breakdown): splits the cost between TLS and the interceptor
HOST = "127.0.0.1"


# ---------------------------------------------------------------- settings and results


@dataclass(frozen=True)
class Settings:
    """How much to measure. Counts are per transport and cell; the second method gets ``secondary_share`` of them."""

    warmup: int = 200
    sequential: int = 2000
    concurrency: int = 100
    total: int = 10000
    secondary_share: float = 0.25
    loops: tuple[str, ...] = DEFAULT_LOOPS
    topologies: tuple[str, ...] = TOPOLOGIES
    methods: tuple[str, ...] = METHODS
    breakdown: bool = False
    deadline_s: float = transport.DEFAULT_DEADLINE_S

    def for_method(self, method: str) -> Settings:
        if method == NODE_HEALTH or self.secondary_share >= 1:
            return self
        share = self.secondary_share
        return replace(
            self,
            warmup=max(50, int(self.warmup * share)),
            sequential=max(200, int(self.sequential * share)),
            total=max(self.concurrency * 10, int(self.total * share)),
        )


QUICK = Settings(warmup=100, sequential=300, total=1500, secondary_share=0.5)


@dataclass
class Figures:
    """One transport's figures in one cell."""

    transport: str
    seq_p50_ms: float
    seq_p99_ms: float
    seq_mean_ms: float
    calls_per_s: float
    load_p50_ms: float
    load_p99_ms: float
    cpu_us_per_call: float
    errors: int


@dataclass
class Cell:
    """One (topology, loop, method): the anchor and the mTLS figures side by side."""

    topology: str
    loop: str
    method: str
    sequential: int
    loaded: int
    concurrency: int
    figures: dict[str, Figures] = field(default_factory=dict)

    def ratio(self, name: str, metric: str, against: str = INSECURE) -> float:
        base = getattr(self.figures[against], metric)
        value = getattr(self.figures[name], metric)
        return float(value / base) if base else float("nan")


RATIO_METRICS = ("seq_p50_ms", "seq_p99_ms", "calls_per_s", "cpu_us_per_call")


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds."""
    if not sorted_ns:
        return float("nan")
    rank = max(1, min(len(sorted_ns), math.ceil(q / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1e6


# ---------------------------------------------------------------- identities, servers, channels


def make_identity(name: str) -> Identity:
    """A fresh in-memory identity, as ``identity.load_or_create`` makes one (without the keychain)."""
    cert_pem, key_pem = make_certificate(name)
    ssh_private, ssh_public = make_ssh_key()
    return Identity(cert_pem=cert_pem, key_pem=key_pem, ssh_private_pem=ssh_private, ssh_public=ssh_public)


def make_trust(folder: Path, server: Identity, client_cert_pem: bytes, client_ssh: str) -> TrustStore:
    """The server's trust store: itself plus the client, paired."""
    trust = TrustStore(folder / "trust.sqlite3", server.cert_pem)
    client = Identity(client_cert_pem, b"", b"", client_ssh)
    trust.add(client.cert_der, "bench-client", client_ssh, [f"{HOST}:0"])
    return trust


class BenchNode(pb_grpc.NodeServicer):
    """``NodeApi.Health`` without a ``Node`` behind it; the other methods keep the base class's UNIMPLEMENTED."""

    async def Health(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.HealthReply:  # noqa: N802
        return pb.HealthReply(serving=True)


@dataclass
class Servers:
    """The servers of one cell and their ports, by transport name."""

    servers: list[grpc.aio.Server]
    ports: dict[str, int]

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop(grace=None) for s in self.servers))


async def _server(interceptors: list[Any] | None) -> grpc.aio.Server:
    """A server with the node's options and both health services, as ``Node.start`` builds it."""
    server = grpc.aio.server(interceptors=interceptors, options=transport.SERVER_OPTIONS)
    pb_grpc.add_NodeServicer_to_server(BenchNode(), server)  # type: ignore[abstract]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server


async def start_servers(server_id: Identity, trust: TrustStore, *, breakdown: bool) -> Servers:
    """The insecure anchor, the node's mTLS server with ``Guard``, and with ``breakdown`` mTLS without ``Guard``."""
    servers: list[grpc.aio.Server] = []
    ports: dict[str, int] = {}

    anchor = await _server(None)
    ports[INSECURE] = anchor.add_insecure_port(f"{HOST}:0")
    servers.append(anchor)

    secure = await _server([transport.Guard(trust, Sessions())])
    ports[MTLS] = secure.add_secure_port(f"{HOST}:0", transport.server_credentials(server_id, trust))
    servers.append(secure)

    if breakdown:
        bare = await _server(None)
        ports[MTLS_BARE] = bare.add_secure_port(f"{HOST}:0", transport.server_credentials(server_id, trust))
        servers.append(bare)

    for server in servers:
        await server.start()
    return Servers(servers, ports)


def open_channel(name: str, port: int, client_id: Identity, server_cert_pem: bytes) -> grpc.aio.Channel:
    """The client side: ``transport.secure_channel`` for mTLS, an insecure channel with the same options otherwise."""
    address = f"{HOST}:{port}"
    if name == INSECURE:
        return grpc.aio.insecure_channel(address, options=transport.CHANNEL_OPTIONS)
    return transport.secure_channel(client_id, server_cert_pem, address)


Call = Callable[[], Awaitable[Any]]


def make_call(channel: grpc.aio.Channel, method: str, deadline_s: float) -> Call:
    """One round trip of ``method`` on ``channel``, with a deadline, checking the answer."""
    if method == NODE_HEALTH:
        node = pb_grpc.NodeStub(channel)
        empty = pb.Empty()

        async def node_health() -> Any:
            reply = await node.Health(empty, timeout=deadline_s)
            if not reply.serving:
                raise RuntimeError("Node/Health answered not serving")
            return reply

        return node_health

    checker = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    serving = health_pb2.HealthCheckResponse.SERVING

    async def health_check() -> Any:
        reply = await checker.Check(request, timeout=deadline_s)
        if reply.status != serving:
            raise RuntimeError("grpc.health.v1/Check answered not serving")
        return reply

    return health_check


# ---------------------------------------------------------------- measuring


class CpuClock:
    """User + system CPU seconds of this process and, if given, the server process."""

    def __init__(self, server_pid: int | None) -> None:
        self._server = psutil.Process(server_pid) if server_pid else None

    def __call__(self) -> float:
        used = time.process_time()
        if self._server is not None:
            times = self._server.cpu_times()
            used += times.user + times.system
        return used


@dataclass
class Samples:
    """Latencies (ns), wall and CPU time of the phases of one transport."""

    sequential: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    loaded_calls: int = 0
    loaded_elapsed_s: float = 0.0
    loaded_cpu_s: float = 0.0
    errors: int = 0

    def figures(self, name: str) -> Figures:
        seq = sorted(self.sequential)
        load = sorted(self.loaded)
        return Figures(
            transport=name,
            seq_p50_ms=percentile(seq, 50),
            seq_p99_ms=percentile(seq, 99),
            seq_mean_ms=(sum(seq) / len(seq) / 1e6) if seq else float("nan"),
            calls_per_s=self.loaded_calls / self.loaded_elapsed_s if self.loaded_elapsed_s else 0.0,
            load_p50_ms=percentile(load, 50),
            load_p99_ms=percentile(load, 99),
            cpu_us_per_call=self.loaded_cpu_s / self.loaded_calls * 1e6 if self.loaded_calls else float("nan"),
            errors=self.errors,
        )


async def sequential(call: Call, n: int, out: Samples) -> None:
    """``n`` calls, one after the other."""
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        try:
            await call()
        except (grpc.RpcError, RuntimeError):
            out.errors += 1
            continue
        out.sequential.append(clock() - start)


async def loaded(call: Call, total: int, concurrency: int, out: Samples, cpu: CpuClock | None = None) -> None:
    """``total`` calls from ``concurrency`` callers at once."""
    clock = time.perf_counter_ns
    left = total

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            start = clock()
            try:
                await call()
            except (grpc.RpcError, RuntimeError):
                out.errors += 1
                continue
            out.loaded.append(clock() - start)

    cpu_before = cpu() if cpu else 0.0
    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    out.loaded_elapsed_s += time.perf_counter() - began
    out.loaded_cpu_s += (cpu() - cpu_before) if cpu else 0.0
    out.loaded_calls += total


def abba(names: list[str]) -> Iterator[str]:
    """Anchor first, then the others, then back: A B C C B A."""
    yield from names
    yield from reversed(names)


Progress = Callable[["Cell"], None]


async def measure_cell(
    topology: str, loop_name: str, method: str, calls: dict[str, Call], settings: Settings, cpu: CpuClock
) -> Cell:
    """Warm every transport up, then sequential and loaded phases in A-B-B-A order."""
    names = list(calls)
    samples = {name: Samples() for name in names}
    for name in names:
        await sequential(calls[name], settings.warmup, Samples())
        await loaded(calls[name], settings.concurrency * 4, settings.concurrency, Samples())
    halves = {name: [settings.sequential // 2, settings.sequential - settings.sequential // 2] for name in names}
    for name in abba(names):
        await sequential(calls[name], halves[name].pop(), samples[name])
    halves = {name: [settings.total // 2, settings.total - settings.total // 2] for name in names}
    for name in abba(names):
        await loaded(calls[name], halves[name].pop(), settings.concurrency, samples[name], cpu)
    figures = {name: samples[name].figures(name) for name in names}
    return Cell(topology, loop_name, method, settings.sequential, settings.total, settings.concurrency, figures)


async def client_side(
    topology: str,
    loop_name: str,
    ports: dict[str, int],
    client_id: Identity,
    server_id: Identity,
    settings: Settings,
    progress: Progress,
    server_pid: int | None = None,
) -> list[Cell]:
    """Open one channel per transport, check that mTLS refuses a stranger, then measure each method."""
    channels = {name: open_channel(name, port, client_id, server_id.cert_pem) for name, port in ports.items()}
    cpu = CpuClock(server_pid)
    try:
        for name, channel in channels.items():
            await asyncio.wait_for(channel.channel_ready(), timeout=settings.deadline_s)
            if name != INSECURE:
                await check_refuses_stranger(ports[name], server_id, settings.deadline_s)
        cells = []
        for method in settings.methods:
            calls = {name: make_call(channel, method, settings.deadline_s) for name, channel in channels.items()}
            cell = await measure_cell(topology, loop_name, method, calls, settings.for_method(method), cpu)
            progress(cell)
            cells.append(cell)
        return cells
    finally:
        await asyncio.gather(*(c.close() for c in channels.values()))


async def check_refuses_stranger(port: int, server_id: Identity, deadline_s: float) -> None:
    """An unpaired client must fail: otherwise this would not be measuring mutual TLS."""
    stranger = make_identity("bench-stranger")
    async with transport.secure_channel(stranger, server_id.cert_pem, f"{HOST}:{port}") as channel:
        try:
            await pb_grpc.NodeStub(channel).Health(pb.Empty(), timeout=deadline_s)
        except grpc.RpcError:
            return
    raise RuntimeError("the mTLS server answered an unpaired client: the benchmark is not measuring mTLS")


async def run_same_loop(loop_name: str, settings: Settings, progress: Progress) -> list[Cell]:
    """Server and client on this one loop, as inside a node."""
    server_id, client_id = make_identity("bench-server"), make_identity("bench-client")
    with tempfile.TemporaryDirectory(prefix="noizylab-bench-") as folder:
        trust = make_trust(Path(folder), server_id, client_id.cert_pem, client_id.ssh_public)
        servers = await start_servers(server_id, trust, breakdown=settings.breakdown)
        try:
            return await client_side("same-loop", loop_name, servers.ports, client_id, server_id, settings, progress)
        finally:
            await servers.stop()
            trust.close()


# ---------------------------------------------------------------- cross-process: the server in its own process


def serve_process(
    conn: multiprocessing.connection.Connection,
    loop_name: str,
    server_pems: tuple[bytes, bytes, bytes, str],
    client_cert_pem: bytes,
    client_ssh: str,
    breakdown: bool,
) -> None:
    """Child process: serve the anchor and the mTLS node on ``loop_name`` until the parent writes to ``conn``."""
    server_id = Identity(*server_pems)

    async def serve() -> None:
        with tempfile.TemporaryDirectory(prefix="noizylab-bench-server-") as folder:
            trust = make_trust(Path(folder), server_id, client_cert_pem, client_ssh)
            servers = await start_servers(server_id, trust, breakdown=breakdown)
            conn.send(servers.ports)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(conn.fileno(), stop.set)
            try:
                await stop.wait()
            finally:
                loop.remove_reader(conn.fileno())
                await servers.stop()
                trust.close()

    run_on(loop_name, serve())


async def run_cross_process(loop_name: str, settings: Settings, progress: Progress) -> list[Cell]:
    """The server in a child process on the same kind of loop, the client here: two node processes."""
    server_id, client_id = make_identity("bench-server"), make_identity("bench-client")
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    pems = (server_id.cert_pem, server_id.key_pem, server_id.ssh_private_pem, server_id.ssh_public)
    args = (child, loop_name, pems, client_id.cert_pem, client_id.ssh_public, settings.breakdown)
    process = context.Process(target=serve_process, args=args, name="bench-server", daemon=True)
    process.start()
    loop = asyncio.get_running_loop()
    try:
        if not await loop.run_in_executor(None, parent.poll, 60.0):
            raise RuntimeError("the server process did not start within 60 s")
        ports: dict[str, int] = parent.recv()
        return await client_side(
            "cross-process", loop_name, ports, client_id, server_id, settings, progress, server_pid=process.pid
        )
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        await loop.run_in_executor(None, process.join, 10.0)
        if process.is_alive():
            process.kill()


# ---------------------------------------------------------------- loops


def run_on(loop_name: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh plain asyncio loop, or on a qasync loop over an offscreen ``QApplication``: the tray's
    (``ui.qt_async.QEventLoop``, ``qasync``) or qasync's own, unchanged (``qasync-stock``, to see what the tray's
    batching gains)."""
    if loop_name == "asyncio":
        return asyncio.run(coro)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    from noizylab_desktop.ui.qt_async import QEventLoop

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    loop = QEventLoop(app) if loop_name == "qasync" else qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        result: T = loop.run_until_complete(coro)
        return result
    finally:
        loop.close()
        asyncio.set_event_loop(None)


# ---------------------------------------------------------------- reporting


def verdict(value: float, limit: float, *, higher_is_better: bool = False) -> str:
    ok = value >= limit if higher_is_better else value <= limit
    return "ok" if ok else "MISS"


def ratio_line(cell: Cell, name: str = MTLS) -> str:
    label = "mTLS" if name == MTLS else "mTLS without Guard"
    return (
        f"{label}/insecure p50 = {cell.ratio(name, 'seq_p50_ms'):.2f}x, p99 = {cell.ratio(name, 'seq_p99_ms'):.2f}x, "
        f"calls/s = {cell.ratio(name, 'calls_per_s'):.2f}x, CPU/call = {cell.ratio(name, 'cpu_us_per_call'):.2f}x"
    )


def format_cell(cell: Cell) -> str:
    names = list(cell.figures)
    others = [n for n in names if n != INSECURE]
    head = (
        f"{cell.topology} / {cell.loop} / {cell.method}   "
        f"({cell.sequential:,} sequential + {cell.loaded:,} loaded calls per transport)"
    )
    width, ratio_width = 15, 19
    lines = [head, "-" * len(head)]
    header = f"{'':26}" + "".join(f"{n:>{width}}" for n in names)
    header += "".join(f"{n.replace(' ', '-') + '/ins':>{ratio_width}}" for n in others) + f"{'target (mTLS)':>17}"
    lines.append(header)
    rows: list[tuple[str, str, str, float | None, bool]] = [
        ("seq p50 (ms)", "seq_p50_ms", "{:.3f}", TARGET_P50_MS, False),
        ("seq p99 (ms)", "seq_p99_ms", "{:.3f}", TARGET_P99_MS, False),
        ("seq mean (ms)", "seq_mean_ms", "{:.3f}", None, False),
        (f"calls/s ({cell.concurrency} callers)", "calls_per_s", "{:,.0f}", TARGET_CALLS_PER_S, True),
        ("under load p50 (ms)", "load_p50_ms", "{:.2f}", None, False),
        ("under load p99 (ms)", "load_p99_ms", "{:.2f}", None, False),
        ("CPU per call (us)", "cpu_us_per_call", "{:.0f}", None, False),
    ]
    for label, metric, fmt, target, higher in rows:
        line = f"{label:26}" + "".join(f"{fmt.format(getattr(cell.figures[n], metric)):>{width}}" for n in names)
        line += "".join(f"{cell.ratio(n, metric):>{ratio_width - 1}.2f}x" for n in others)
        if target is not None:
            value = getattr(cell.figures[MTLS], metric)
            sign = ">=" if higher else "<="
            line += f"{sign + ' ' + fmt.format(target):>12} {verdict(value, target, higher_is_better=higher):>4}"
        lines.append(line)
    errors = {n: f.errors for n, f in cell.figures.items() if f.errors}
    if errors:
        lines.append(f"ERRORS (failed calls): {errors}")
    lines += [ratio_line(cell, n) for n in others]
    return "\n".join(lines)


def summary(cells: list[Cell]) -> str:
    lines = [
        "summary: mTLS+Guard, and its ratio to the insecure anchor of the same cell "
        f"(targets p50 <= {TARGET_P50_MS} ms / p99 <= {TARGET_P99_MS} ms / >= {TARGET_CALLS_PER_S:,.0f} calls/s)",
        f"{'topology':14} {'loop':8} {'method':21} {'p50 ms':>7} {'p99 ms':>7} {'calls/s':>8} {'CPU us':>7}"
        f"{'p50 x':>7}{'p99 x':>7}{'c/s x':>7}{'CPU x':>7}  p50/p99/calls",
    ]
    for c in cells:
        f = c.figures[MTLS]
        verdicts = [
            verdict(f.seq_p50_ms, TARGET_P50_MS),
            verdict(f.seq_p99_ms, TARGET_P99_MS),
            verdict(f.calls_per_s, TARGET_CALLS_PER_S, higher_is_better=True),
        ]
        ratios = "".join(f"{c.ratio(MTLS, m):6.2f}x" for m in RATIO_METRICS)
        lines.append(
            f"{c.topology:14} {c.loop:8} {c.method:21} {f.seq_p50_ms:7.3f} {f.seq_p99_ms:7.3f} {f.calls_per_s:8,.0f} "
            f"{f.cpu_us_per_call:7.0f}{ratios}  {'/'.join(verdicts)}"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def document(settings: Settings, cells: list[Cell], elapsed_s: float) -> dict[str, Any]:
    """Everything, for ``--json``."""
    return {
        "environment": environment(),
        "settings": asdict(settings),
        "targets": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS, "calls_per_s": TARGET_CALLS_PER_S},
        "elapsed_s": elapsed_s,
        "cells": [
            {
                "topology": c.topology,
                "loop": c.loop,
                "method": c.method,
                "sequential_calls": c.sequential,
                "loaded_calls": c.loaded,
                "concurrency": c.concurrency,
                "figures": {n: asdict(f) for n, f in c.figures.items()},
                "ratios_to_insecure": {
                    n: {m: c.ratio(n, m) for m in RATIO_METRICS} for n in c.figures if n != INSECURE
                },
                "meets_targets": {
                    "p50": c.figures[MTLS].seq_p50_ms <= TARGET_P50_MS,
                    "p99": c.figures[MTLS].seq_p99_ms <= TARGET_P99_MS,
                    "calls_per_s": c.figures[MTLS].calls_per_s >= TARGET_CALLS_PER_S,
                },
            }
            for c in cells
        ],
    }


# ---------------------------------------------------------------- main


def _csv(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        if not items or any(v not in allowed for v in items):
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description="Health round trip over mTLS vs an insecure anchor, on loopback.")
    parser.add_argument("--quick", action="store_true", help="a short run (about a quarter of the full one)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    parser.add_argument("--sequential", type=int, help="sequential calls per transport and cell (full: 2000)")
    parser.add_argument("--total", type=int, help="calls under load per transport and cell (full: 10000)")
    parser.add_argument("--concurrency", type=int, help="concurrent callers under load (default 100)")
    parser.add_argument("--secondary-share", type=float, help=f"share of the counts for {HEALTH_CHECK} (full: 0.25)")
    parser.add_argument("--loops", type=_csv(LOOPS), help=f"{','.join(LOOPS)} (default: {','.join(DEFAULT_LOOPS)})")
    parser.add_argument("--topologies", type=_csv(TOPOLOGIES), help=f"{','.join(TOPOLOGIES)} (default: both)")
    parser.add_argument("--methods", type=_csv(METHODS), help=f"{','.join(METHODS)} (default: both)")
    parser.add_argument("--breakdown", action="store_true", help=f"also measure '{MTLS_BARE}' (TLS vs Guard cost)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Settings()
    overrides = {
        "sequential": args.sequential,
        "total": args.total,
        "concurrency": args.concurrency,
        "secondary_share": args.secondary_share,
        "loops": args.loops,
        "topologies": args.topologies,
        "methods": args.methods,
        "breakdown": args.breakdown or None,
    }
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}), args.json


def main(argv: list[str] | None = None) -> int:
    settings, as_json = parse_args(argv)

    def progress(cell: Cell) -> None:
        if not as_json:
            print(format_cell(cell) + "\n", flush=True)

    if not as_json:
        env = environment()
        print(
            f"noizylab bench/rpc.py: Health round trip on loopback; python {env['python']}, grpcio {env['grpcio']}, "
            f"{env['cpus']} CPUs, load average {env['load_average'][0]:.2f}\n"
            f"targets for mTLS+Guard: sequential p50 <= {TARGET_P50_MS} ms, p99 <= {TARGET_P99_MS} ms, "
            f">= {TARGET_CALLS_PER_S:,.0f} calls/s with {settings.concurrency} callers "
            f"(the original design claimed {DESIGN_CLAIM})\n",
            flush=True,
        )
    began = time.perf_counter()
    cells: list[Cell] = []
    for topology in settings.topologies:
        runner = run_same_loop if topology == "same-loop" else run_cross_process
        for loop_name in settings.loops:
            cells += run_on(loop_name, runner(loop_name, settings, progress))
    elapsed = time.perf_counter() - began
    if as_json:
        print(json.dumps(document(settings, cells, elapsed), indent=2))
    else:
        print(summary(cells))
        print(f"\ntotal {elapsed:.1f} s")
    return 1 if any(f.errors for c in cells for f in c.figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
