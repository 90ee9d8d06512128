"""Tunnel throughput and latency: a 1 GiB transfer and 10,000 small request/response round trips, each through
raw loopback TCP (the anchor), ``ssh -L`` through a local OpenSSH sshd, and ``noizylab forward`` between two real
nodes, all in the same run against the same server.

The server runs in a process of its own (a thread per connection, blocking sockets): a connection that starts with
``S`` is a sink (it reads to end-of-file, then answers how many bytes it read), one that starts with ``E`` echoes.
The client is this process, blocking sockets too, so every path pays the same client and server costs and differs
only in what carries the bytes. Targets: tunnel throughput at least 80% of raw TCP and at least ssh -L's; added
p50 latency (tunnel p50 minus raw p50) at most 0.5 ms.

A fourth row, ``gRPC alone`` (``bench/tunnel_floor.py``), is the tunnel's floor: the same upload and round trips as
messages on one grpc.aio stream over the node's mTLS between two processes, with no sockets at either end. What the
tunnel adds over it is its own; what it costs is gRPC's.

    scripts/with-keyring.sh .venv/bin/python bench/tunnel.py [--gib 1] [--round-trips 10000] [--json]
        [--host node|tray|both]   (bench/hosting.py: the nodes headless, in the tray app, or one run each)
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import hosting, tunnel_floor  # noqa: E402
from tests.conftest import NodeProcess, wait_for  # noqa: E402
from tests.sync_harness import Sshd  # noqa: E402

CHUNK = 1 << 20
MESSAGE = b"x" * 64

SERVER = r"""
import socket, sys, threading
def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"S":
            total = 0
            while data := conn.recv(1 << 20):
                total += len(data)
            conn.sendall(str(total).encode())
        elif mode == b"E":
            while data := conn.recv(65536):
                conn.sendall(data)
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def throughput(port: int, total: int) -> float:
    """Bytes per second of a ``total``-byte upload answered by the sink's count."""
    block = os.urandom(CHUNK)
    with connect(port) as s:
        began = time.perf_counter()
        s.sendall(b"S")
        for _ in range(total // CHUNK):
            s.sendall(block)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while data := s.recv(64):
            answer += data
        elapsed = time.perf_counter() - began
    if int(answer) != total:
        raise SystemExit(f"the sink read {answer!r} bytes, not {total}")
    return total / elapsed


def round_trips(port: int, count: int) -> list[float]:
    """Milliseconds of each of ``count`` 64-byte request/response round trips on one connection."""
    times = []
    with connect(port) as s:
        s.sendall(b"E")
        for _ in range(100):  # warm-up
            s.sendall(MESSAGE)
            got = 0
            while got < len(MESSAGE):
                got += len(s.recv(65536))
        for _ in range(count):
            began = time.perf_counter()
            s.sendall(MESSAGE)
            got = 0
            while got < len(MESSAGE):
                got += len(s.recv(65536))
            times.append((time.perf_counter() - began) * 1000)
    return times


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def server() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def ssh_forward(base: Path, target: int) -> Iterator[int]:
    keys = base / "ssh-keys"
    keys.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True)
    sshd = Sshd(base / "sshd", [(keys / "id.pub").read_text().strip()])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    ssh = subprocess.Popen(
        ["ssh", "-N", "-p", str(sshd.port), "-i", str(keys / "id"), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
         "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{local}:127.0.0.1:{target}", f"{sshd.user}@127.0.0.1"],
    )  # fmt: skip
    try:
        wait_for(lambda: accepts(local), 20, "ssh -L to listen")
        yield local
    finally:
        ssh.terminate()
        ssh.wait()
        sshd.stop()


@contextmanager
def noizylab_forward(base: Path, target: int, host: str) -> Iterator[int]:
    alpha, beta = NodeProcess(base / "alpha", "alpha"), NodeProcess(base / "beta", "beta")
    with hosting.Hosting(host) as nodes:
        nodes.start(alpha.home)
        nodes.start(beta.home)
        beta.join(alpha.invite())
        wait_for(lambda: (alpha.peer("beta") or {}).get("online"), 30, "alpha to see beta online")
        beta.cli("tunnel", "allow", "alpha", str(target))
        yield int(alpha.json("forward", "beta", str(target))["local_port"])


def measure(name: str, port: int, total: int, count: int, say: Callable[[str], None]) -> dict[str, Any]:
    say(f"{name}: {total / 2**30:g} GiB upload ...")
    rate = throughput(port, total)
    say(f"{name}: {count} round trips ...")
    times = round_trips(port, count)
    return {
        "throughput_mib_s": rate / 2**20,
        "p50_ms": statistics.median(times),
        "p99_ms": quantile(times, 0.99),
        "mean_ms": statistics.fmean(times),
    }


def measure_all(host: str, total: int, count: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The three paths against the same server, ours with its nodes on ``host``."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tunnel-") as tmp, server() as target:
        base = Path(tmp)
        results["raw TCP"] = measure("raw TCP", target, total, count, say)
        with ssh_forward(base, target) as port:
            results["ssh -L"] = measure("ssh -L", port, total, count, say)
        with noizylab_forward(base, target, host) as port:
            results["noizylab forward"] = measure("noizylab forward", port, total, count, say)
    say("gRPC alone: upload and round trips ...")
    results["gRPC alone"] = tunnel_floor.measure(total, count)
    raw, ssh, ours, floor = results["raw TCP"], results["ssh -L"], results["noizylab forward"], results["gRPC alone"]
    summary = {
        "tunnel/raw throughput": ours["throughput_mib_s"] / raw["throughput_mib_s"],
        "tunnel/ssh throughput": ours["throughput_mib_s"] / ssh["throughput_mib_s"],
        "tunnel/gRPC-alone throughput": ours["throughput_mib_s"] / floor["throughput_mib_s"],
        "tunnel added p50 ms": ours["p50_ms"] - raw["p50_ms"],
        "ssh added p50 ms": ssh["p50_ms"] - raw["p50_ms"],
        "gRPC-alone added p50 ms": floor["p50_ms"] - raw["p50_ms"],
    }
    return {"paths": results, "ratios": summary, "cpus": os.cpu_count()}


def figures(result: dict[str, Any]) -> list[hosting.Figure]:
    """Ours, for the node/tray comparison, each beside ssh -L's of the same run (a forwarder in user space too)."""
    ours, ssh = result["paths"]["noizylab forward"], result["paths"]["ssh -L"]
    return [
        hosting.Figure("tunnel throughput", ours["throughput_mib_s"], "MiB/s", True, ssh["throughput_mib_s"]),
        hosting.Figure("tunnel round trip p50", ours["p50_ms"], "ms", anchor=ssh["p50_ms"]),
        hosting.Figure("tunnel round trip p99", ours["p99_ms"], "ms", anchor=ssh["p99_ms"]),
    ]


def report(host: str, result: dict[str, Any]) -> None:
    summary = result["ratios"]
    print(f"{'path':<18} {'MiB/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}   (nodes: {host})")
    for name, r in result["paths"].items():
        print(f"{name:<18} {r['throughput_mib_s']:>9.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['mean_ms']:>8.3f}")
    print(
        f"tunnel/raw throughput = {summary['tunnel/raw throughput']:.2f} (target >= 0.80); "
        f"tunnel/ssh -L = {summary['tunnel/ssh throughput']:.2f} (target >= 1.00)"
    )
    print(
        f"added p50: tunnel {summary['tunnel added p50 ms']:.3f} ms (target <= 0.5), "
        f"ssh -L {summary['ssh added p50 ms']:.3f} ms, gRPC alone {summary['gRPC-alone added p50 ms']:.3f} ms"
    )
    print(
        f"tunnel/gRPC alone throughput = {summary['tunnel/gRPC-alone throughput']:.2f} "
        f"(the tunnel's floor: one mTLS stream between two processes, no sockets); load {hosting.load_average()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the transfer in GiB (default 1)")
    parser.add_argument("--round-trips", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    hosting.add_argument(parser)
    args = parser.parse_args()
    total = int(args.gib * 2**30) // CHUNK * CHUNK

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    hosting.run_hosts(
        args.host, lambda host: measure_all(host, total, args.round_trips, say), figures, report, args.json
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
