"""Metrics: collector overhead at 1 Hz, /metrics scrape time and series count, beside Prometheus' node_exporter.

Run: ``scripts/with-keyring.sh .venv/bin/python bench/metrics.py`` (or ``make bench BENCH=bench/metrics.py``);
``--seconds`` sets each CPU window (default 30), ``--scrapes`` the timed scrapes (default 50), ``--json`` prints one
JSON document instead of the table.

What runs: a real node (``noizylab start`` in a temporary home, sampling at 1 Hz, no peers) and, as the anchor,
Debian's ``prometheus-node-exporter`` with its default collectors on another loopback port, in the same run.

- Idle CPU: each process's user + system time over the window, as % of one core. The node's figure covers the whole
  node (gRPC server, heartbeat loop, sampler), so it is an upper bound on the collector's. node_exporter collects only
  when scraped, so it idles near zero: it is not the comparison, just its floor.
- Scraped at 1 Hz: the same window while both are scraped once a second (Prometheus at a 1 s interval): the
  comparison that puts both on equal terms.
- Collector alone: the sampler's work in this process (psutil + NVML + building the snapshot), CPU per sample, and
  what that means at 1 Hz.
- Scrape time: wall time of one HTTP GET of /metrics (new connection each time, for both), p50 and p95.
- Series: sample lines in one scrape.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOIZYLAB = [sys.executable, "-m", "noizylab_desktop"]
EXPORTER = "prometheus-node-exporter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def fetch(url: str, token: str | None) -> bytes:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
        return bytes(answer.read())


def series(text: bytes) -> int:
    return sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))


def wait_until_up(url: str, token: str | None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fetch(url, token)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # another process starting; nothing to wait on across processes


def cpu_window(pids: dict[str, int], seconds: float, scrape: dict[str, tuple[str, str | None]]) -> dict[str, float]:
    """% of one core each process used over ``seconds``, scraping the given targets once a second meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.monotonic()
    tick = began
    while time.monotonic() - began < seconds:
        for url, token in scrape.values():
            fetch(url, token)
        tick += 1.0
        time.sleep(max(0.0, tick - time.monotonic()))  # the 1 Hz schedule itself is what is being measured
    elapsed = time.monotonic() - began
    return {name: 100 * (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


def scrape_times(url: str, token: str | None, count: int) -> list[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        fetch(url, token)
        times.append((time.perf_counter() - began) * 1000)
    return times


def collector_alone(samples: int) -> dict[str, float]:
    """CPU per sample of the sampler's own work, in this process."""
    from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
    from noizylab_desktop.services.metrics.gpu import GpuSampler
    from noizylab_desktop.services.metrics.history import History
    from noizylab_desktop.services.metrics.system import SystemSampler

    system, gpu, history = SystemSampler(process_interval_s=10.0), GpuSampler(), History()
    began = time.process_time()
    for i in range(samples):
        into = mpb.NodeMetrics(node_id="bench", name="bench", at_unix_seconds=float(i))
        system.sample(into)
        gpu.sample(into)
        history.add("bench", into)
        # The process walk runs once per 10 samples at 1 Hz; make it due on the same share of samples here.
        system._top_at -= 1.0
    per_sample = (time.process_time() - began) / samples
    gpu.close()
    return {"cpu_ms_per_sample": per_sample * 1000, "core_percent_at_1hz": per_sample * 100}


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(seconds: float, scrapes: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="noizylab-bench-metrics-"))
    (home / "config.toml").write_text(
        'name = "bench"\ngrpc_host = "127.0.0.1"\nadvertise = ["127.0.0.1"]\n[ports]\ngrpc = 0\nsftp = 0\nhttp = 0\n'
    )
    exporter: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([*NOIZYLAB, "--home", str(home), "start"], check=True, capture_output=True)
        runtime = json.loads((home / "state" / "runtime.json").read_text())
        made = subprocess.run(
            [*NOIZYLAB, "--home", str(home), "token", "create", "--json"], check=True, capture_output=True, text=True
        )
        token = json.loads(made.stdout)["token"]
        # One `noizylab metrics` call, so the RPC figures a working node has are in the scrape too.
        subprocess.run([*NOIZYLAB, "--home", str(home), "metrics"], check=True, capture_output=True)
        ours = f"http://127.0.0.1:{runtime['http']}/metrics"
        pids = {"noizylab": int(runtime["pid"])}
        targets: dict[str, tuple[str, str | None]] = {"noizylab": (ours, token)}
        if shutil.which(EXPORTER):
            port = free_port()
            exporter = subprocess.Popen(
                [EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            targets["node_exporter"] = (f"http://127.0.0.1:{port}/metrics", None)
            pids["node_exporter"] = exporter.pid
        for url, tok in targets.values():
            wait_until_up(url, tok)
        time.sleep(2)  # let both settle after start-up (their first samples, imports) before the windows
        result: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "seconds": seconds,
            "idle_core_percent": cpu_window(pids, seconds, {}),
            "scraped_1hz_core_percent": cpu_window(pids, seconds, targets),
            "collector_alone": collector_alone(100),
            "scrape_ms": {},
            "series": {},
        }
        timings: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(2):  # A-B-B-A halves, so drift on a busy machine hits both alike
            for name in [*targets, *reversed(list(targets))]:
                timings[name] += scrape_times(*targets[name], max(1, scrapes // 4))
        for name, (url, tok) in targets.items():
            result["scrape_ms"][name] = {"p50": p(timings[name], 0.5), "p95": p(timings[name], 0.95)}
            result["series"][name] = series(fetch(url, tok))
        result["anchor"] = "node_exporter" if "node_exporter" in targets else "none (prometheus-node-exporter missing)"
        return result
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        subprocess.run([*NOIZYLAB, "--home", str(home), "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def show(r: dict[str, Any]) -> None:
    anchor = "node_exporter"
    has = anchor in r["series"]
    print(f"metrics bench: {r['cpus']} CPUs, {r['seconds']:.0f} s CPU windows, anchor: {r['anchor']}")
    print(f"{'figure':38} {'noizylab':>12} {anchor:>14} {'ratio':>8}  target")
    rows = [
        ("idle CPU, % of a core (whole process)", "idle_core_percent", None, "<= 1%"),
        ("scraped at 1 Hz, % of a core", "scraped_1hz_core_percent", None, ""),
    ]
    for label, key, _, target in rows:
        ours, theirs = r[key]["noizylab"], r[key].get(anchor, float("nan"))
        print(f"{label:38} {ours:12.2f} {theirs:14.2f} {ratio(ours, theirs) if has else 'n/a':>8}  {target}")
    alone = r["collector_alone"]
    print(f"{'collector alone, ms CPU per sample':38} {alone['cpu_ms_per_sample']:12.2f} {'':>14} {'':>8}")
    print(f"{'collector alone at 1 Hz, % of a core':38} {alone['core_percent_at_1hz']:12.2f} {'':>14} {'':>8}  <= 1%")
    for q in ("p50", "p95"):
        ours, theirs = r["scrape_ms"]["noizylab"][q], r["scrape_ms"].get(anchor, {}).get(q, float("nan"))
        label = f"scrape time {q}, ms"
        print(f"{label:38} {ours:12.2f} {theirs:14.2f} {ratio(ours, theirs) if has else 'n/a':>8}  <= 50 ms")
    ours, theirs = r["series"]["noizylab"], r["series"].get(anchor, 0)
    print(f"{'series per scrape':38} {ours:12d} {theirs:14d} {ratio(ours, theirs) if has else 'n/a':>8}  <= 2000")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each CPU window (default 30)")
    parser.add_argument("--scrapes", type=int, default=50, help="timed scrapes per exporter (default 50)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    result = run(args.seconds, args.scrapes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
