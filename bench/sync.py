"""Folder sync beside rsync over OpenSSH and Syncthing, measured in the same run on this machine.

Run: ``scripts/with-keyring.sh .venv/bin/python bench/sync.py`` (``--quick`` for smaller sizes, ``--json``;
``--host tray`` runs our two nodes in the tray app, ``--host both`` once each and side by side: bench/hosting.py).

Ours runs as two real node processes (mTLS gRPC + the embedded asyncssh SFTP server, loopback), except the delta
and no-op figures, which use the same engine and server in one process so the bytes on the wire can be counted.
The 512 MiB file goes into a share of its own, as rsync copies it alone, and then into the share of the small
files too (shown beside: each pass there also rescans those files on both sides). Every timed part starts after a
``sync`` of the setup's writes, ours and rsync's alike. rsync runs over a local OpenSSH sshd (``-a``; ``--stats``
for the bytes it sent). Syncthing (Debian's) runs as two instances with temporary homes, configured through their
REST API on loopback, watcher delay at its 1 s minimum.

Figures (targets from the issue): small-file propagation p50 ≤ 150 ms / p95 ≤ 300 ms; 10,000 small files ≤ 2×
rsync; 512 MiB ≥ 0.9× rsync's speed; a 1 MiB change in 256 MiB ≤ 2 MiB sent; a no-op rescan of 10,000 files
≤ 0.5 s; idle CPU of a watched 10,000-file share ≤ 1% of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import hosting  # noqa: E402
from tests.conftest import NodeProcess  # noqa: E402
from tests.sync_harness import Sshd, SyncPair  # noqa: E402

MiB = 1024 * 1024
IDLE_S = 20.0  # idle CPU windows: long enough that the 1 s ticks and a shared machine's noise average out


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.002) -> float:
    """Seconds until ``condition()`` holds (polling every ``poll`` s); raises after ``timeout``."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("timed out")
        time.sleep(poll)
    return time.perf_counter() - start


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(size // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
        f.write(os.urandom(size % (16 * MiB)))


def make_small(folder: Path, count: int) -> None:
    for i in range(count):
        sub = folder / f"d{i // 500:03}"
        if i % 500 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05}.txt").write_bytes(os.urandom(1024))


def count_files(folder: Path) -> int:
    """Files at their final names: temp files (ours, rsync's and Syncthing's all start with a dot) do not count."""
    if not folder.exists():
        return 0
    return sum(sum(not name.startswith(".") for name in files) for _, _, files in os.walk(folder))


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def propagation(src: Path, dst: Path, n: int, settle: float) -> list[float]:
    """Seconds from a small file's write on one side to its full content on the other, ``n`` times."""
    times = []
    for i in range(n):
        data = f"propagation {i} {time.time()}\n".encode()
        name = f"prop-{i:03}.txt"
        start = time.perf_counter()
        (src / name).write_bytes(data)
        target, want = dst / name, data
        wait_until(lambda t=target, w=want: t.exists() and t.read_bytes() == w, 10)  # type: ignore[misc]
        times.append(time.perf_counter() - start)
        time.sleep(settle)  # let both sides go idle before the next sample (a bench, not a test)
    return times


# ---------------------------------------------------------------------------------------------------- ours


def cpu_pct(procs: dict[str, psutil.Process], seconds: float) -> dict[str, float]:
    """Each process's CPU over ``seconds``, in % of one core."""
    before = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
    time.sleep(seconds)
    return {name: (sum(p.cpu_times()[:2]) - before[name]) / seconds * 100 for name, p in procs.items()}


@contextlib.contextmanager
def paired_nodes(base: Path, host: str) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two real nodes on ``host``, paired, each allowing the other ``sync``; stopped afterwards."""
    alpha = NodeProcess(base / "alpha", "alpha", sync={"folder": str(base / "alpha-sync")})
    beta = NodeProcess(base / "beta", "beta", sync={"folder": str(base / "beta-sync")})
    with hosting.Hosting(host) as nodes:
        nodes.start(alpha.home)
        nodes.start(beta.home)
        beta.join(alpha.invite())
        wait_until(lambda: bool((alpha.peer("beta") or {}).get("online")), 20, 0.1)
        alpha.cli("allow", "beta", "sync")
        beta.cli("allow", "alpha", "sync")
        yield alpha, beta


def bench_ours(
    base: Path,
    n_small: int,
    big: int,
    samples: int,
    only_small: bool = False,
    right_after_small: Callable[[], float] | None = None,
    host: str = "node",
) -> dict[str, Any]:
    with paired_nodes(base, host) as (alpha, beta):
        src, dst = base / "work", base / "beta-sync" / "work"
        src.mkdir()
        procs = {name: psutil.Process(node.pid) for name, node in (("alpha", alpha), ("beta", beta))}
        # The same two nodes before any share: what sync adds is the difference.
        no_share = {} if only_small else cpu_pct(procs, IDLE_S)
        alpha.cli("share", "add", str(src), "--peer", "beta")
        alpha.cli("sync", "wait", "--timeout", "30")
        prop = [] if only_small else propagation(src, dst, samples, 0.4)

        alpha.cli("share", "pause", str(src))
        make_small(src / "many", n_small)
        os.sync()  # as before rsync's: neither starts with the other's (or the setup's) writes still pending
        cpu = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
        alpha.cli("share", "resume", str(src))
        start = time.perf_counter()
        wait_until(lambda: count_files(dst / "many") >= n_small, 600, 0.1)  # counting costs CPU: poll gently
        small_s = time.perf_counter() - start
        small_cpu = {name: sum(p.cpu_times()[:2]) - cpu[name] for name, p in procs.items()}
        if only_small:
            return {"small_files_s": small_s, "small_files_cpu_s": small_cpu}
        # The small files' pass ends (ancestors, the merge texts) before the next figure starts: measured without
        # this, its tail ran during the 512 MiB push and took 2.6 → 6.5 s (see docs/sync.md, Bench). It also leaves
        # our nodes idle while rsync's small files are timed right after ours.
        alpha.cli("sync", "wait", "--timeout", "120", timeout=150)
        anchor_small = right_after_small() if right_after_small is not None else None

        # The large file goes alone into a share of its own, as rsync copies it alone; then into the share of the
        # small files, where each pass also rescans those on both sides (the no-op figure), shown beside.
        alone = base / "work-big"
        alone.mkdir()
        alpha.cli("share", "add", str(alone), "--peer", "beta")
        alpha.cli("sync", "wait", "--timeout", "30")
        times = []
        for folder, there in ((alone, base / "beta-sync" / "work-big"), (src, dst)):
            alpha.cli("share", "pause", str(folder))
            write_random(folder / "big.bin", big)
            os.sync()  # as for the small files: the setup's writes (and earlier parts') are not left to the timed part
            alpha.cli("share", "resume", str(folder))
            start = time.perf_counter()
            wait_until((there / "big.bin").exists, 600, 0.01)
            times.append(time.perf_counter() - start)
            alpha.cli("sync", "wait", "--timeout", "120", timeout=150)
        big_s, big_in_share_s = times

        idle = cpu_pct(procs, IDLE_S)
        return {
            "propagation_s": prop,
            "small_files_s": small_s,
            "small_files_cpu_s": small_cpu,
            "rsync_small_files_right_after_s": anchor_small,
            "big_s": big_s,
            "big_in_small_share_s": big_in_share_s,
            "idle_cpu_pct": idle,
            "no_share_idle_cpu_pct": no_share,
        }


def bench_idle(base: Path, n_small: int, host: str = "node") -> dict[str, Any]:
    """Idle CPU only (``--only idle``): two paired nodes, then the same with a watched share of ``n_small`` files."""
    with paired_nodes(base, host) as (alpha, beta):
        procs = {name: psutil.Process(node.pid) for name, node in (("alpha", alpha), ("beta", beta))}
        no_share = cpu_pct(procs, IDLE_S)
        src = base / "work"
        make_small(src / "many", n_small)
        alpha.cli("share", "add", str(src), "--peer", "beta")
        alpha.cli("sync", "wait", "--timeout", "600", timeout=650)
        return {"idle_cpu_pct": cpu_pct(procs, IDLE_S), "no_share_idle_cpu_pct": no_share}


def bench_inprocess(base: Path, n_small: int, delta_base: int) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        pair = SyncPair(base / "inproc")
        await pair.start()
        try:
            make_small(pair.local, n_small)
            assert await pair.sync()
            start = time.perf_counter()
            assert await pair.sync()
            noop_s = time.perf_counter() - start
            for p in list(pair.local.iterdir()):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            for p in list(pair.remote.iterdir()):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            pair.engine.set_share(pair.share, allow_deletes=True)  # type: ignore[union-attr]
            assert await pair.sync()
            write_random(pair.local / "base.bin", delta_base)
            assert await pair.sync()
            sent = pair.remote_side.bytes_sent
            with open(pair.local / "base.bin", "r+b") as f:
                f.seek(delta_base // 3)
                f.write(os.urandom(MiB))
            assert await pair.sync()
            delta_sent = pair.remote_side.bytes_sent - sent
            return {"noop_rescan_s": noop_s, "delta_sent_bytes": delta_sent}
        finally:
            await pair.close()

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------------- rsync


def bench_rsync(base: Path, n_small: int, big: int, delta_base: int, only_small: bool = False) -> dict[str, Any]:
    keys = base / "rsync-keys"
    keys.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True)
    sshd = Sshd(base / "rsync-sshd", [(keys / "id.pub").read_text().strip()])
    ssh = (
        f"ssh -p {sshd.port} -i {keys / 'id'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o BatchMode=yes -o LogLevel=ERROR"
    )

    def rsync(src: Path, dst: Path, *extra: str) -> tuple[float, str]:
        dst.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        out = subprocess.run(
            ["rsync", "-a", *extra, "-e", ssh, f"{src}/", f"{sshd.user}@127.0.0.1:{dst}/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return time.perf_counter() - start, out

    try:
        src = base / "rsync-src"
        make_small(src / "many", n_small)
        os.sync()
        small_s, _ = rsync(src / "many", base / "rsync-dst" / "many")
        if only_small:
            return {"small_files_s": small_s}
        write_random(src / "big" / "big.bin", big)
        os.sync()
        big_s, _ = rsync(src / "big", base / "rsync-dst" / "big")
        # Ours makes each file durable before its rename; rsync does not unless asked: both figures are shown.
        big_fsync_s, _ = rsync(src / "big", base / "rsync-dst" / "big-fsync", "--fsync")
        write_random(src / "delta" / "base.bin", delta_base)
        rsync(src / "delta", base / "rsync-dst" / "delta")
        with open(src / "delta" / "base.bin", "r+b") as f:
            f.seek(delta_base // 3)
            f.write(os.urandom(MiB))
        _, stats = rsync(src / "delta", base / "rsync-dst" / "delta", "--stats")
        found = re.search(r"Total bytes sent: ([\d,.]+)", stats)
        assert found is not None, stats
        sent = int(found[1].replace(",", "").replace(".", ""))
        return {"small_files_s": small_s, "big_s": big_s, "big_fsync_s": big_fsync_s, "delta_sent_bytes": sent}
    finally:
        sshd.stop()


# ---------------------------------------------------------------------------------------------------- syncthing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Syncthing:
    def __init__(self, home: Path) -> None:
        self.home = home
        subprocess.run(
            ["syncthing", "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"],
            check=True,
            capture_output=True,
        )
        config = ET.parse(home / "config.xml").getroot()
        self.device_id = config.find("device").get("id")  # type: ignore[union-attr]
        self.api_key = config.find("gui/apikey").text  # type: ignore[union-attr]
        self.gui = free_port()
        self.listen = free_port()
        env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1"}
        self.proc = subprocess.Popen(
            ["syncthing", "serve", f"--home={home}", "--no-browser", f"--gui-address=127.0.0.1:{self.gui}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self._ping(), 30, 0.1)
        self.call("PATCH", "/rest/config/options", {
            "listenAddresses": [f"tcp://127.0.0.1:{self.listen}"],
            "globalAnnounceEnabled": False, "localAnnounceEnabled": False, "relaysEnabled": False,
            "natEnabled": False, "urAccepted": -1, "autoUpgradeIntervalH": 0, "crashReportingEnabled": False,
        })  # fmt: skip

    def _ping(self) -> bool:
        try:
            self.call("GET", "/rest/system/ping")
            return True
        except OSError:
            return False

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gui}{path}", data=data, method=method, headers={"X-API-Key": self.api_key or ""}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read()
        return json.loads(text) if text.strip() else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def share_folder(a: Syncthing, b: Syncthing, src: Path, dst: Path) -> None:
    """Introduce the two instances to each other and share ``src`` (on ``a``) with ``dst`` (on ``b``), watched."""
    for me, other, folder in ((a, b, src), (b, a, dst)):
        me.call("POST", "/rest/config/devices", {
            "deviceID": other.device_id, "name": "other", "addresses": [f"tcp://127.0.0.1:{other.listen}"],
        })  # fmt: skip
        me.call("POST", "/rest/config/folders", {
            "id": "bench", "label": "bench", "path": str(folder), "type": "sendreceive",
            "devices": [{"deviceID": me.device_id}, {"deviceID": other.device_id}],
            "fsWatcherEnabled": True, "fsWatcherDelayS": 1, "rescanIntervalS": 3600,
        })  # fmt: skip


def bench_syncthing(base: Path, n_small: int, samples: int) -> dict[str, Any]:
    a, b = Syncthing(base / "st-a"), Syncthing(base / "st-b")
    try:
        src, dst = base / "st-src", base / "st-dst"
        src.mkdir()
        dst.mkdir()
        share_folder(a, b, src, dst)
        wait_until(lambda: a.call("GET", "/rest/system/connections")["connections"][b.device_id]["connected"], 60, 0.2)
        wait_until(lambda: a.call("GET", "/rest/db/status?folder=bench")["state"] == "idle", 60, 0.2)
        prop = propagation(src, dst, samples, 0.4)
        make_small(src / "many", n_small)
        start = time.perf_counter()
        wait_until(lambda: count_files(dst / "many") >= n_small, 600, 0.1)
        small_s = time.perf_counter() - start
        return {"propagation_s": prop, "small_files_s": small_s, "idle_cpu_pct": syncthing_idle(a, b)}
    finally:
        a.stop()
        b.stop()


def syncthing_idle(a: Syncthing, b: Syncthing) -> dict[str, float]:
    """Both instances' CPU once their watched folder is in sync (the anchor of the idle figure)."""
    for me in (a, b):
        wait_until(lambda m=me: m.call("GET", "/rest/db/status?folder=bench")["state"] == "idle", 120, 0.5)  # type: ignore[misc]
    return cpu_pct({"a": psutil.Process(a.proc.pid), "b": psutil.Process(b.proc.pid)}, IDLE_S)


def bench_syncthing_idle(base: Path, n_small: int) -> dict[str, Any]:
    """Two Syncthing instances sharing ``n_small`` files, watched, in sync: their idle CPU (``--only idle``)."""
    a, b = Syncthing(base / "st-a"), Syncthing(base / "st-b")
    try:
        src, dst = base / "st-src", base / "st-dst"
        make_small(src / "many", n_small)
        dst.mkdir()
        share_folder(a, b, src, dst)
        wait_until(lambda: count_files(dst / "many") >= n_small, 600, 0.5)
        return {"idle_cpu_pct": syncthing_idle(a, b)}
    finally:
        a.stop()
        b.stop()


# ---------------------------------------------------------------------------------------------------- report


def measure(args: argparse.Namespace, host: str) -> dict[str, Any]:
    """One run of the parts ``args`` asks for, our nodes on ``host``."""
    n_small, big, delta_base, samples = (
        (2000, 128 * MiB, 64 * MiB, 15) if args.quick else (10_000, 512 * MiB, 256 * MiB, 30)
    )
    results: dict[str, Any] = {"sizes": {"small_files": n_small, "big_bytes": big, "delta_base_bytes": delta_base}}
    results["host"] = host
    with tempfile.TemporaryDirectory(prefix="nz-bench-sync-") as tmp:
        base = Path(tmp)
        parts = args.parts.split(",")
        if args.only == "idle":
            results["ours"] = bench_idle(base / "ours", n_small, host)
            if "syncthing" in parts:
                try:
                    results["syncthing"] = bench_syncthing_idle(base / "syncthing", n_small)
                except Exception as exc:  # noqa: BLE001 - the anchor is reported as missing, with why
                    results["syncthing"] = {"error": f"{type(exc).__name__}: {exc}"}
            return results
        small = args.only == "small"
        if small and args.repeat > 1 and {"ours", "rsync"} <= set(parts):
            # Ours and rsync take turns, each going first every other time, so a busy moment of a shared machine
            # (or its file system still busy with files deleted just before) falls on both alike.
            runs = []
            for i in range(args.repeat):
                if i % 2:
                    theirs = bench_rsync(base / f"rsync-{i}", n_small, big, delta_base, True)["small_files_s"]
                    runs.append((bench_ours(base / f"ours-{i}", n_small, big, samples, True, host=host), theirs))
                else:
                    ours = bench_ours(base / f"ours-{i}", n_small, big, samples, True, host=host)
                    runs.append(
                        (ours, bench_rsync(base / f"rsync-{i}", n_small, big, delta_base, True)["small_files_s"])
                    )
            results["runs"] = [
                {
                    "ours_s": o["small_files_s"],
                    "rsync_s": r,
                    "ratio": o["small_files_s"] / r,
                    "ours_cpu_s": o["small_files_cpu_s"],
                }
                for o, r in runs
            ]
            results["median_ratio"] = statistics.median(o["small_files_s"] / r for o, r in runs)
            return results
        if "ours" in parts:
            # rsync's small files are also timed right after ours: how fast this machine's file system creates
            # files drifts from one minute to the next (see docs/sync.md), and its other parts come minutes later.
            adjacent = (
                (lambda: bench_rsync(base / "rsync-small", n_small, big, delta_base, True)["small_files_s"])
                if "rsync" in parts and not small
                else None
            )
            results["ours"] = bench_ours(base / "ours", n_small, big, samples, small, adjacent, host)
            if not small:
                results["ours"].update(bench_inprocess(base / "ours", n_small, delta_base))
        if "rsync" in parts:
            results["rsync"] = bench_rsync(base / "rsync", n_small, big, delta_base, small)
        if small and "small_files_s" in results.get("rsync", {}) and "ours" in results:
            results["ratio"] = results["ours"]["small_files_s"] / results["rsync"]["small_files_s"]
        if "syncthing" in parts and not small:
            try:
                results["syncthing"] = bench_syncthing(base / "syncthing", n_small, samples)
            except Exception as exc:  # noqa: BLE001 - the anchor is reported as missing, with why
                results["syncthing"] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def figures(r: dict[str, Any]) -> list[hosting.Figure]:
    """Our figures that depend on where the nodes run, for the node/tray comparison (the no-op rescan and the delta
    run in this process, not in the nodes, and are left out)."""
    out: list[hosting.Figure] = []
    ours, rs, st = r.get("ours", {}), r.get("rsync", {}), r.get("syncthing", {})
    if ours.get("propagation_s"):
        p50, p95 = quantiles(ours["propagation_s"])
        s50, s95 = quantiles(st["propagation_s"]) if st.get("propagation_s") else (None, None)
        out.append(hosting.Figure("sync propagation p50", p50 * 1000, "ms", anchor=s50 and s50 * 1000))
        out.append(hosting.Figure("sync propagation p95", p95 * 1000, "ms", anchor=s95 and s95 * 1000))
    n = r["sizes"]["small_files"]
    if "small_files_s" in ours:
        rsync_s = ours.get("rsync_small_files_right_after_s") or rs.get("small_files_s")
        out.append(hosting.Figure(f"sync {n:,} small files", ours["small_files_s"], "s", anchor=rsync_s))
    if "median_ratio" in r:
        out.append(hosting.Figure(f"sync {n:,} small files / rsync (median)", r["median_ratio"], "x"))
    if "big_s" in ours:
        big = r["sizes"]["big_bytes"]
        rsync_speed = big / rs["big_s"] / MiB if "big_s" in rs else None
        out.append(hosting.Figure(f"sync {big // MiB} MiB file", big / ours["big_s"] / MiB, "MiB/s", True, rsync_speed))
    st_idle = max(st["idle_cpu_pct"].values()) if st.get("idle_cpu_pct") else None
    for name, pct in ours.get("idle_cpu_pct", {}).items():
        out.append(hosting.Figure(f"sync idle CPU, watched share ({name})", pct, "% core", anchor=st_idle))
    return out


def print_results(args: argparse.Namespace, host: str, results: dict[str, Any]) -> None:
    """One run's figures: the table for a full run, else its JSON."""
    if args.json or args.only or set(args.parts.split(",")) != {"ours", "rsync", "syncthing"}:
        print(json.dumps(results, indent=2))
    else:
        print(f"our nodes: {host}")
        report(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 files, 128 MiB, a 64 MiB delta base")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--parts", default="ours,rsync,syncthing", help="which to run (default: all three)")
    parser.add_argument(
        "--only",
        choices=["small", "idle"],
        help="only this figure, as JSON (small: the many small files; idle: our two nodes before and with a watched"
        " share of the small files, then Syncthing's)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="with --only small: this many runs of ours and rsync")
    parser.add_argument(
        "--scale",
        type=int,
        nargs="?",
        const=100_000,
        help="home-folder scale instead (bench/sync_scale.py): N files of mixed sizes (100,000 if N is left out)",
    )
    parser.add_argument("--scale-limit", type=float, default=900.0, help="with --scale: seconds each sync may take")
    parser.add_argument("--changes", type=int, default=9, help="with --scale: propagated changes (p50 over them)")
    hosting.add_argument(parser)
    args = parser.parse_args()
    if args.scale is not None:
        from bench import sync_scale

        with tempfile.TemporaryDirectory(prefix="nz-bench-scale-") as tmp:
            scaled = sync_scale.run(Path(tmp), args.scale, args.parts.split(","), args.changes, args.scale_limit)
        print(json.dumps(scaled, indent=2)) if args.json else sync_scale.report(scaled)
        return 0
    hosting.run_hosts(
        args.host,
        lambda host: measure(args, host),
        figures,
        lambda host, results: print_results(args, host, results),
        args.json and args.host == "both",
    )
    return 0


def row(figure: str, ours: str, anchor: str, ratio: float | None, target: str) -> None:
    ratio_text = f"{ratio:8.2f}" if ratio is not None else " " * 8
    print(f"{figure:44} {ours:>12} {anchor:>24} {ratio_text}  {target}")


def report(r: dict[str, Any]) -> None:
    ours, rs, st = r["ours"], r["rsync"], r.get("syncthing", {})
    n, big, dbase = r["sizes"]["small_files"], r["sizes"]["big_bytes"], r["sizes"]["delta_base_bytes"]
    p50, p95 = quantiles(ours["propagation_s"])
    print(f"machine: {os.cpu_count()} CPUs, {platform_line()} (a shared machine: compare within a run)")
    row("figure", "ours", "anchor (same run)", None, "target")
    if "propagation_s" in st:
        s50, s95 = quantiles(st["propagation_s"])
        row(
            "small-file propagation p50",
            f"{p50 * 1000:.0f} ms",
            f"syncthing {s50 * 1000:.0f} ms",
            p50 / s50,
            "≤ 150 ms",
        )
        row(
            "small-file propagation p95",
            f"{p95 * 1000:.0f} ms",
            f"syncthing {s95 * 1000:.0f} ms",
            p95 / s95,
            "≤ 300 ms",
        )
    else:
        row("small-file propagation p50", f"{p50 * 1000:.0f} ms", "syncthing: not run", None, "≤ 150 ms")
        row("small-file propagation p95", f"{p95 * 1000:.0f} ms", "", None, "≤ 300 ms")
        print(f"  syncthing: {st.get('error', 'skipped')}")
    small, rs_small = ours["small_files_s"], rs["small_files_s"]
    rs_adjacent = ours.get("rsync_small_files_right_after_s")
    if rs_adjacent:
        row(
            f"{n:,} small files (1 KiB)",
            f"{small:.2f} s",
            f"rsync {rs_adjacent:.2f} s",
            small / rs_adjacent,
            "≤ 2× rsync",
        )
        row("", "", f"(minutes later) {rs_small:.2f} s", small / rs_small, "")
    else:
        row(f"{n:,} small files (1 KiB)", f"{small:.2f} s", f"rsync {rs_small:.2f} s", small / rs_small, "≤ 2× rsync")
    if "small_files_s" in st:
        row("", "", f"syncthing {st['small_files_s']:.2f} s", small / st["small_files_s"], "")
    speed, rs_speed = big / ours["big_s"] / MiB, big / rs["big_s"] / MiB
    row(f"{big // MiB} MiB file (MiB/s)", f"{speed:.0f}", f"rsync {rs_speed:.0f}", speed / rs_speed, "≥ 0.9× rsync")
    if "big_in_small_share_s" in ours:
        in_share = big / ours["big_in_small_share_s"] / MiB
        row(f"  into the share of the {n:,} files", f"{in_share:.0f}", "", in_share / rs_speed, "")
    if "big_fsync_s" in rs:
        fsync_speed = big / rs["big_fsync_s"] / MiB
        row("", "", f"rsync --fsync {fsync_speed:.0f}", speed / fsync_speed, "(durable, like ours)")
    sent, rs_sent = ours["delta_sent_bytes"], rs["delta_sent_bytes"]
    row(f"1 MiB change in {dbase // MiB} MiB: bytes sent", f"{sent:,}", f"rsync {rs_sent:,}", sent / rs_sent, "≤ 2 MiB")
    row(f"no-op rescan of {n:,} files (both sides)", f"{ours['noop_rescan_s']:.3f} s", "", None, "≤ 0.5 s")
    idle = ours["idle_cpu_pct"]
    row(
        "idle CPU of a watched share, % of a core",
        f"{idle['alpha']:.2f}%",
        f"serving node {idle['beta']:.2f}%",
        None,
        "≤ 1%",
    )
    if "no_share_idle_cpu_pct" in ours:
        base_idle = ours["no_share_idle_cpu_pct"]
        row("  the same nodes before any share", f"{base_idle['alpha']:.2f}%", f"{base_idle['beta']:.2f}%", None, "")
    if "idle_cpu_pct" in st:
        st_idle = st["idle_cpu_pct"]
        ratio = max(idle.values()) / max(st_idle.values()) if max(st_idle.values()) > 0 else None
        row("  syncthing, the same share watched", "", f"{st_idle['a']:.2f}% / {st_idle['b']:.2f}%", ratio, "")


def platform_line() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
