"""Tasks between two real nodes on loopback, beside ``ssh host CMD`` to a local OpenSSH sshd (the anchor).

Run: ``scripts/with-keyring.sh .venv/bin/python bench/tasks.py`` (or ``make bench BENCH=bench/tasks.py``);
``--quick`` for a short run; ``--host tray`` runs both nodes in the tray app, ``--host both`` once each and side
by side (bench/hosting.py). Two nodes (alpha asks, beta runs and allows alpha) start in temporary homes and are
paired through the real command line; an sshd starts on a free loopback port with a temporary config, host key and
user key. Measured, in the same run:

- no-op round trip: ``true`` on the other node, one at a time through the Python API (``Grid.execute_task``), against
  ``ssh host true`` with a fresh connection each time and over one multiplexed connection (ControlMaster);
- output throughput: ``seq 1 N`` on the other node, every line back to the caller, against ``ssh host seq 1 N``;
- batched submissions: N no-op tasks in one ``SubmitBatch`` (accepted/s, and completed/s until all have exited),
  against N ``ssh host true`` over the multiplexed connection, 8 at a time;
- without an anchor: how late a 0.2 s timeout ends a task, and how long a cancel takes to end a tree in which one
  child ignores SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import hosting  # noqa: E402
from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb  # noqa: E402
from noizylab_desktop.grid import Grid  # noqa: E402

NOIZYLAB = [sys.executable, "-m", "noizylab_desktop"]
TARGET_P50_MS, TARGET_P95_MS, TARGET_LINES_S, TARGET_BATCH_S = 30.0, 60.0, 50_000.0, 500.0


def cli(home: Path, *args: str) -> str:
    return subprocess.run([*NOIZYLAB, "--home", str(home), *args], capture_output=True, text=True, check=True).stdout


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def start_nodes(root: Path, nodes: hosting.Hosting) -> tuple[Path, Path]:
    """alpha and beta on ``nodes``' host, paired, beta allowing alpha's tasks."""
    homes = []
    for name in ("alpha", "beta"):
        home = root / name
        home.mkdir()
        config = {"name": name, "grpc_host": "127.0.0.1", "advertise": ["127.0.0.1"],
                  "ports": {"grpc": 0, "sftp": 0, "http": 0}}  # fmt: skip
        (home / "config.toml").write_text(tomli_w.dumps(config))
        nodes.start(home)
        homes.append(home)
    alpha, beta = homes
    cli(beta, "pair", "join", json.loads(cli(alpha, "pair", "invite", "--json"))["code"])
    wait_until(lambda: '"online": true' in cli(alpha, "peers", "--json"), 20, "alpha to see beta")
    cli(beta, "allow", "alpha", "tasks")
    return alpha, beta


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sshd:
    """A private OpenSSH server on a free loopback port, and the ssh command line that reaches it."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700)
        for key in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
        (root / "authorized_keys").write_text((root / "user.pub").read_text())
        self.port = free_port()
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            # What a tuned server turns off, so the anchor is not slowed by lookups a task never does.
            "UseDNS no\nPrintMotd no\nPrintLastLog no\n"
        )
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        options = ("BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR")
        self.base = ["ssh", "-F", "/dev/null", "-i", str(root / "user"), "-p", str(self.port)]
        self.base += [word for option in options for word in ("-o", option)]
        self.mux = [*self.base, "-o", "ControlMaster=auto", "-o", f"ControlPath={root / 'mux'}",
                    "-o", "ControlPersist=60"]  # fmt: skip
        wait_until(lambda: self.run(self.base, "true").returncode == 0, 10, "sshd to accept")
        self.run(self.mux, "true")

    def run(self, base: list[str], *command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*base, "127.0.0.1", *command], capture_output=True)

    def close(self) -> None:
        subprocess.run([*self.mux, "-O", "exit", "127.0.0.1"], capture_output=True)
        self.proc.terminate()
        self.proc.wait(5)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


async def timed_async(fn: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await fn()
    return (time.perf_counter() - began) * 1000


async def grid_figures(alpha: Path, rounds: int, lines: int, batch: int) -> dict[str, float]:
    async with Grid(alpha) as grid:
        for _ in range(3):  # warm the channel and the peer's runner
            await grid.execute_task(task_data={"argv": ["true"]}, on="beta")
        trips = [await timed_async(lambda: grid.execute_task(task_data={"argv": ["true"]}, on="beta"))
                 for _ in range(rounds)]  # fmt: skip
        began = time.perf_counter()
        result = await grid.execute_task(task_data={"argv": ["seq", "1", str(lines)]}, on="beta")
        seconds = time.perf_counter() - began
        assert result.stdout.count(b"\n") == lines, "every line arrives"
        requests = [tpb.SubmitRequest(spec=tpb.TaskSpec(argv=["true"]), on="beta") for _ in range(batch)]
        began = time.perf_counter()
        accepted = await grid.tasks.submit_batch(requests)
        accepted_s = time.perf_counter() - began
        ids = {a.id for a in accepted}
        while True:
            done = {r.id for r in await grid.tasks.list(batch + 50) if r.id in ids and r.state != "running"}
            if len(done) == len(ids):
                break
            await asyncio.sleep(0.02)
        completed_s = time.perf_counter() - began
        overshoot = []
        for _ in range(9):
            began = time.perf_counter()
            await grid.execute_task(task_data={"argv": ["sleep", "30"]}, on="beta", timeout_s=0.2)
            overshoot.append((time.perf_counter() - began - 0.2) * 1000)
        cancels = [await cancel_latency(grid) for _ in range(3)]
    p50, p95 = percentiles(trips)
    return {
        "p50": p50,
        "p95": p95,
        "lines_s": lines / seconds,
        "accepted_s": batch / accepted_s,
        "completed_s": batch / completed_s,
        "timeout_ms": statistics.median(overshoot),
        "timeout_max_ms": max(overshoot),
        "cancel_ms": max(cancels),
    }


STUBBORN_TREE = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "time.sleep(60)'])\nprint('up', flush=True)\ntime.sleep(60)"
)


async def cancel_latency(grid: Grid) -> float:
    """Milliseconds from asking to cancel a tree (one child ignores SIGTERM) to its exit arriving back."""
    request = tpb.SubmitRequest(spec=tpb.TaskSpec(argv=[sys.executable, "-c", STUBBORN_TREE]), on="beta")
    task_id = ""
    began = 0.0
    async for chunk in grid.tasks.submit(request):
        which = chunk.WhichOneof("body")
        if which == "output" and not began:
            began = time.perf_counter()
            await grid.tasks.cancel(task_id)
        elif which == "accepted":
            task_id = chunk.accepted.id
        elif which == "exit":
            break
    return (time.perf_counter() - began) * 1000


def ssh_figures(sshd: Sshd, rounds: int, lines: int, batch: int) -> dict[str, float]:
    fresh = [timed(lambda: sshd.run(sshd.base, "true")) for _ in range(max(5, rounds // 5))]
    mux = [timed(lambda: sshd.run(sshd.mux, "true")) for _ in range(rounds)]
    began = time.perf_counter()
    out = sshd.run(sshd.mux, "seq", "1", str(lines)).stdout
    seconds = time.perf_counter() - began
    assert out.count(b"\n") == lines
    began = time.perf_counter()

    async def parallel() -> None:
        gate = asyncio.Semaphore(8)

        async def one() -> None:
            async with gate:
                await asyncio.to_thread(sshd.run, sshd.mux, "true")

        await asyncio.gather(*(one() for _ in range(ssh_batch)))

    # A rate, so a smaller sample keeps the anchor's run short (ssh is ~100x slower per task here).
    ssh_batch = min(batch, 100)
    asyncio.run(parallel())
    batch_s = time.perf_counter() - began
    batch = ssh_batch
    fp50, fp95 = percentiles(fresh)
    mp50, mp95 = percentiles(mux)
    return {"fresh_p50": fp50, "fresh_p95": fp95, "p50": mp50, "p95": mp95, "lines_s": lines / seconds,
            "batch_s": batch / batch_s}  # fmt: skip


def measure(args: argparse.Namespace, host: str) -> dict[str, Any]:
    """Ours (the nodes on ``host``) then ssh, in the same run."""
    rounds, lines, batch = (30, 100_000, 200) if args.quick else (200, 1_000_000, 500)
    root = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    sshd = None
    try:
        with hosting.Hosting(host) as nodes:
            homes = start_nodes(root, nodes)
            sshd = Sshd(root / "ssh")
            grid = asyncio.run(grid_figures(homes[0], rounds, lines, batch))
        ssh = ssh_figures(sshd, rounds, lines, batch)
    finally:
        if sshd is not None:
            sshd.close()
        shutil.rmtree(root, ignore_errors=True)
    return {"sizes": {"rounds": rounds, "lines": lines, "batch": batch}, "grid": grid, "ssh": ssh}


def report(host: str, result: dict[str, Any]) -> None:
    grid, ssh, sizes = result["grid"], result["ssh"], result["sizes"]
    print(f"tasks bench on {os.cpu_count()} CPUs ({sizes['rounds']} round trips, {sizes['lines']:,} lines, "
          f"batch of {sizes['batch']}; nodes: {host})")  # fmt: skip
    print(f"{'figure':<34}{'noizylab':>12}{'ssh (anchor)':>14}{'ratio':>8}{'target':>10}")
    rows = [
        ("no-op round trip p50 (ms)", grid["p50"], ssh["p50"], f"<= {TARGET_P50_MS:g}"),
        ("no-op round trip p95 (ms)", grid["p95"], ssh["p95"], f"<= {TARGET_P95_MS:g}"),
        ("  ssh with a fresh connection p50", grid["p50"], ssh["fresh_p50"], ""),
        ("  ssh with a fresh connection p95", grid["p95"], ssh["fresh_p95"], ""),
        ("output (lines/s)", grid["lines_s"], ssh["lines_s"], f">= {TARGET_LINES_S:,.0f}"),
        ("batched submissions accepted/s", grid["accepted_s"], ssh["batch_s"], f">= {TARGET_BATCH_S:g}"),
        ("batched tasks completed/s", grid["completed_s"], ssh["batch_s"], ""),
    ]
    for name, ours, anchor, target in rows:
        print(f"{name:<34}{ours:>12,.1f}{anchor:>14,.1f}{ours / anchor:>8.2f}{target:>10}")
    print(f"{'timeout overshoot p50 of 9 (ms)':<34}{grid['timeout_ms']:>12,.1f}{'-':>14}{'-':>8}{'<= 100':>10}")
    print(f"{'timeout overshoot worst of 9 (ms)':<34}{grid['timeout_max_ms']:>12,.1f}{'-':>14}{'-':>8}{'':>10}")
    print(f"{'cancel to exit, worst of 3 (ms)':<34}{grid['cancel_ms']:>12,.1f}{'-':>14}{'-':>8}{'<= 1000':>10}")
    print("(the overshoot includes the round trip; on cancel the leader ends on SIGTERM and the rest of its group,")
    print(" a child that ignores SIGTERM included, is killed as soon as it does; a leader that ignores it waits 0.3 s)")
    print("ratio = noizylab / ssh (for times lower is better, for rates higher is better)")


def figures(result: dict[str, Any]) -> list[hosting.Figure]:
    """Ours, for the node/tray comparison, beside ssh's figure of the same run where it has one."""
    grid, ssh = result["grid"], result["ssh"]
    return [
        hosting.Figure("tasks no-op round trip p50", grid["p50"], "ms", anchor=ssh["p50"]),
        hosting.Figure("tasks no-op round trip p95", grid["p95"], "ms", anchor=ssh["p95"]),
        hosting.Figure("tasks output", grid["lines_s"], "lines/s", True, ssh["lines_s"]),
        hosting.Figure("tasks batch accepted", grid["accepted_s"], "/s", True, ssh["batch_s"]),
        hosting.Figure("tasks batch completed", grid["completed_s"], "/s", True, ssh["batch_s"]),
        hosting.Figure("tasks timeout overshoot p50", grid["timeout_ms"], "ms"),
        hosting.Figure("tasks cancel to exit (worst)", grid["cancel_ms"], "ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    hosting.add_argument(parser)
    args = parser.parse_args()
    hosting.run_hosts(args.host, lambda host: measure(args, host), figures, report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
