"""Folder sync at home-folder scale (``bench/sync.py --scale N``): N files of mixed sizes in nested folders, ours
beside rsync over OpenSSH and Syncthing in the same run.

The tree (the same one for all three tools, made once, ``seed`` fixed): 92% of the files 100 B-16 KiB, 7.8%
16-256 KiB, 0.2% 1-8 MiB (sizes log-uniform within each class), about 25 files a folder, folders nested four deep.

Figures, each tool in turn on the same tree (Syncthing last, under ``--scale-limit`` seconds of its own):

- **initial sync**: from the share's creation (ours: ``share add``; Syncthing: both folders configured) until every
  file is at its final name on the other side (counted every 0.5 s); rsync: one ``rsync -a`` over ssh.
- **no-op rescan**: ours, the driving node's ``WaitIdle`` on the in-sync share (a full pass: scan here, the peer's
  listing, the plan); rsync, a second ``rsync -a`` with nothing to send; Syncthing, a ``/rest/db/scan`` of the
  folder until it reports idle again.
- **propagation**: a small file written while the N files are watched, until its content is on the other side;
  p50 over ``changes`` changes (rsync has no watcher: its figure is the no-op run that would carry the change).
- **resident memory** (psutil RSS, sampled every 0.1 s): each node before the share, at its peak during the
  initial sync, and idle once in sync; rsync's two sides (the local rsync + ssh; sshd's session + the remote rsync).
- **index on disk**: ours the share's SQLite files on both nodes (with their WAL), Syncthing its database folders.
- **memory per file**: (idle RSS in sync - RSS before the share) / N, and the same at the peak; 1,000,000 files are
  stated as the RSS before the share + 1,000,000 × that.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench import sync as base  # bench/sync.py: its nodes and Syncthing helpers
from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.local_client import LocalClient
from tests.sync_harness import Sshd

MiB = 1024 * 1024
FILES_PER_FOLDER = 25
FANOUT = 8
CLASSES = ((0.92, 100, 16 * 1024), (0.078, 16 * 1024, 256 * 1024), (0.002, MiB, 8 * MiB))


# ---------------------------------------------------------------------------------------------------- the tree


def folder_of(i: int) -> str:
    """Folder of the ``i``-th file: folders numbered in FANOUT-ary tree order, so the tree is ~4 deep at 100,000."""
    n = i // FILES_PER_FOLDER
    parts = []
    while True:
        parts.append(f"d{n % FANOUT}")
        n //= FANOUT
        if n == 0:
            break
    return "/".join(reversed(parts))


def sizes(n: int, seed: int = 23) -> list[int]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = rng.random()
        k = 0
        while k < len(CLASSES) - 1 and x >= CLASSES[k][0]:
            x -= CLASSES[k][0]
            k += 1
        low, high = CLASSES[k][1:]
        out.append(int(math.exp(rng.uniform(math.log(low), math.log(high)))))
    return out


def make_tree(root: Path, n: int) -> int:
    """N files of home-folder sizes under ``root``; returns their total bytes."""
    pool = os.urandom(8 * MiB + 4096)  # slices of one random pool: distinct files (offsets differ), cheap to make
    total = 0
    made: set[str] = set()
    for i, size in enumerate(sizes(n)):
        folder = root / folder_of(i)
        if folder_of(i) not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder_of(i))
        start = (i * 4099) % (len(pool) - size) if size < len(pool) else 0
        # A unique head so no two files are equal (ours and Syncthing would otherwise dedupe by hash).
        (folder / f"f{i:07}.dat").write_bytes(f"{i}\n".encode() + pool[start : start + size])
        total += size
    return total


def count_final(folder: Path) -> int:
    return base.count_files(folder)


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


# ---------------------------------------------------------------------------------------------------- memory


class RssSampler:
    """Peak RSS of named process groups, sampled every 0.1 s on a thread (a group: a callable giving its processes,
    asked again each time, so short-lived children such as rsync's are seen)."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self.peak = dict.fromkeys(groups, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, procs in self.groups.items():
                self.peak[name] = max(self.peak[name], rss(procs()))
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass  # gone meanwhile
    return total


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


# ---------------------------------------------------------------------------------------------------- ours


async def wait_idle(home: Path, timeout: float) -> float:
    """Seconds the node at ``home`` took to answer ``WaitIdle`` (a pass of every share until it finds them equal)."""
    paths = Paths.resolve(home)
    async with LocalClient(paths, load_settings(paths)) as node:
        stub = spb_grpc.SyncStub(node.channel)
        start = time.perf_counter()
        await node.call(stub.WaitIdle, spb.WaitRequest(timeout_s=timeout), timeout + 10)
        return time.perf_counter() - start


def ours(work: Path, tree_root: Path, n: int, changes: int, limit: float) -> dict[str, Any]:
    with base.paired_nodes(work, "node") as (alpha, beta):  # the scale figures are headless
        pids = {"driver": alpha.pid, "serving": beta.pid}
        procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        before = {name: p.memory_info().rss for name, p in procs.items()}
        dst = work / "beta-sync" / tree_root.name
        os.sync()
        out: dict[str, Any] = {"rss_before": before}
        with RssSampler({name: (lambda p=p: [p]) for name, p in procs.items()}) as sampler:  # type: ignore[misc]
            start = time.perf_counter()
            alpha.cli("share", "add", str(tree_root), "--peer", "beta")
            base.wait_until(lambda: count_final(dst) >= n, limit, 0.5)
            out["initial_s"] = time.perf_counter() - start
            out["settle_s"] = asyncio.run(wait_idle(alpha.home, limit))  # the pass recording the last batches ends
            out["noop_s"] = [asyncio.run(wait_idle(alpha.home, limit)) for _ in range(3)]
            try:
                out["propagation_s"] = propagation(tree_root, dst, changes, 60.0)
            except TimeoutError:
                out["propagation_error"] = "a change did not arrive within 60 s"
        out["rss_peak"] = sampler.peak
        time.sleep(3.0)  # a bench: past the trim's quiet window (trim.py) before the idle sample
        out["rss_idle"] = {name: p.memory_info().rss for name, p in procs.items()}
        out["index_bytes"] = {
            name: sum(f.stat().st_size for f in (node.home / "state" / "sync").glob(f"{kind}-*.sqlite*"))
            for name, node, kind in (("driver", alpha, "share"), ("serving", beta, "offer"))
        }
        return out


def propagation(src: Path, dst: Path, n: int, timeout: float) -> list[float]:
    """As bench/sync.py's, with a longer wait: at this scale one change takes a full pass on each side."""
    times = []
    for i in range(n):
        data = f"propagation {i} {time.time()}\n".encode()
        target = dst / f"prop-{i:03}.txt"
        start = time.perf_counter()
        (src / target.name).write_bytes(data)
        base.wait_until(lambda t=target, w=data: t.exists() and t.read_bytes() == w, timeout, 0.005)  # type: ignore[misc]
        times.append(time.perf_counter() - start)
        time.sleep(0.3)  # both sides idle again before the next sample (a bench, not a test)
    return times


# ---------------------------------------------------------------------------------------------------- rsync


def rsync(work: Path, tree_root: Path, n: int) -> dict[str, Any]:
    keys = work / "keys"
    keys.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True)
    sshd = Sshd(work / "sshd", [(keys / "id.pub").read_text().strip()])
    ssh = (
        f"ssh -p {sshd.port} -i {keys / 'id'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o BatchMode=yes -o LogLevel=ERROR"
    )
    dst = work / "dst"
    dst.mkdir()
    running: list[int] = []

    def sender() -> list[psutil.Process]:
        return tree(running[0]) if running else []

    def receiver() -> list[psutil.Process]:
        return tree(sshd.proc.pid)[1:]  # the listener itself is not part of a transfer

    def run() -> float:
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["rsync", "-a", "-e", ssh, f"{tree_root}/", f"{sshd.user}@127.0.0.1:{dst}/"], stdout=subprocess.DEVNULL
        )
        running[:] = [proc.pid]
        if proc.wait() != 0:
            raise RuntimeError(f"rsync exited {proc.returncode}")
        running.clear()
        return time.perf_counter() - start

    try:
        os.sync()
        with RssSampler({"sender": sender, "receiver": receiver}) as sampler:
            initial = run()
        assert count_final(dst) >= n
        noop = [run() for _ in range(3)]
        return {"initial_s": initial, "noop_s": noop, "rss_peak": sampler.peak}
    finally:
        sshd.stop()


# ---------------------------------------------------------------------------------------------------- syncthing


def syncthing(work: Path, tree_root: Path, n: int, changes: int, limit: float) -> dict[str, Any]:
    a, b = base.Syncthing(work / "st-a"), base.Syncthing(work / "st-b")
    # Syncthing's monitor process starts the one that syncs as its child: each instance is its process tree.
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "a": lambda: tree(a.proc.pid),
        "b": lambda: tree(b.proc.pid),
    }
    before = {name: rss(procs()) for name, procs in groups.items()}
    dst = work / "st-dst"
    dst.mkdir()
    result: dict[str, Any] = {"rss_before": before}
    try:
        os.sync()
        with RssSampler(groups) as sampler:
            start = time.perf_counter()
            base.share_folder(a, b, tree_root, dst)
            try:
                base.wait_until(lambda: count_final(dst) >= n, limit, 0.5)
            except TimeoutError:
                result["error"] = f"not in sync after {limit:.0f} s ({count_final(dst):,} of {n:,} files)"
                result["rss_peak"] = sampler.peak
                return result
            result["initial_s"] = time.perf_counter() - start
            for me in (a, b):
                base.wait_until(
                    lambda m=me: m.call("GET", "/rest/db/status?folder=bench")["state"] == "idle",  # type: ignore[misc]
                    limit,
                    0.5,
                )
            noop = []
            for _ in range(3):
                start = time.perf_counter()
                a.call("POST", "/rest/db/scan?folder=bench")  # returns once the scan is done
                noop.append(time.perf_counter() - start)
            result["noop_s"] = noop
            result["propagation_s"] = propagation(tree_root, dst, changes, 60.0)
        result["rss_peak"] = sampler.peak
        time.sleep(2.0)
        result["rss_idle"] = {name: rss(procs()) for name, procs in groups.items()}
        result["index_bytes"] = {
            name: sum(tree_bytes(d) for d in (work / home).iterdir() if d.is_dir() and "db" in d.name)
            for name, home in (("a", "st-a"), ("b", "st-b"))
        }
        return result
    finally:
        a.stop()
        b.stop()


# ---------------------------------------------------------------------------------------------------- report


@contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"  [{label}: {time.perf_counter() - start:.1f} s]", file=sys.stderr, flush=True)


def run(base_dir: Path, n: int, parts: list[str], changes: int, limit: float) -> dict[str, Any]:
    root = base_dir / "home"
    with timed(f"made {n:,} files"):
        total = make_tree(root, n)
    results: dict[str, Any] = {"files": n, "bytes": total, "loadavg": [os.getloadavg()]}
    runs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("ours", lambda: ours(base_dir / "ours", root, n, changes, limit)),
        ("rsync", lambda: rsync(base_dir / "rsync", root, n)),
        ("syncthing", lambda: syncthing(base_dir / "syncthing", root, n, changes, limit)),
    ]
    for part, fn in runs:
        if part not in parts:
            continue
        with timed(part):
            try:
                results[part] = fn()
            except Exception as exc:  # noqa: BLE001 - a part that fails is reported with why, the others stand
                results[part] = {"error": f"{type(exc).__name__}: {exc}"}
        results["loadavg"].append(os.getloadavg())
        for leftover in (base_dir / part).glob("*"):  # free the disk for the next part (its tree stays)
            if leftover.is_dir() and part != "ours":
                shutil.rmtree(leftover, ignore_errors=True)
    return results


def mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


def report(r: dict[str, Any]) -> None:
    n = r["files"]
    o, rs, st = r.get("ours", {}), r.get("rsync", {}), r.get("syncthing", {})
    print(f"{n:,} files, {r['bytes'] / 1e9:.2f} GB; load average {' → '.join(f'{x[0]:.1f}' for x in r['loadavg'])}")
    for name, part in (("ours", o), ("rsync", rs), ("syncthing", st)):
        for key in ("error", "propagation_error"):
            if key in part:
                print(f"  {name}: {part[key]}")

    def line(figure: str, ours_v: str, anchor: str, ratio: float | None, target: str, met: bool | None) -> None:
        ratio_s = f"{ratio:.2f}×" if ratio is not None else ""
        met_s = "" if met is None else ("yes" if met else "NO")
        print(f"{figure:34} {ours_v:>14} {anchor:>34} {ratio_s:>7}  {target:14} {met_s}")

    line("figure", "ours", "anchor (same run)", None, "target", None)
    if "initial_s" in o and "initial_s" in rs:
        ratio = o["initial_s"] / rs["initial_s"]
        line("initial sync", f"{o['initial_s']:.1f} s", f"rsync {rs['initial_s']:.1f} s", ratio, "≤ 1.5× rsync",
             ratio <= 1.5)  # fmt: skip
        if "initial_s" in st:
            line("", "", f"syncthing {st['initial_s']:.1f} s", o["initial_s"] / st["initial_s"], "", None)
    if "noop_s" in o and "noop_s" in rs:
        ours_noop, rs_noop = statistics.median(o["noop_s"]), statistics.median(rs["noop_s"])
        line("no-op rescan (median of 3)", f"{ours_noop:.2f} s", f"rsync {rs_noop:.2f} s", ours_noop / rs_noop,
             "≤ rsync", ours_noop <= rs_noop)  # fmt: skip
        if "noop_s" in st:
            st_noop = statistics.median(st["noop_s"])
            line("", "", f"syncthing {st_noop:.2f} s", ours_noop / st_noop, "", None)
    if "propagation_s" in o:
        p50 = statistics.median(o["propagation_s"]) * 1000
        anchor, ratio = "", None
        if "propagation_s" in st:
            s50 = statistics.median(st["propagation_s"]) * 1000
            anchor, ratio = f"syncthing {s50:.0f} ms", p50 / s50
        line(f"propagation p50 ({len(o['propagation_s'])} changes)", f"{p50:.0f} ms", anchor, ratio, "≤ 150 ms",
             p50 <= 150)  # fmt: skip
    if "rss_peak" in o:
        for node, st_node, rs_side in (("driver", "a", "sender"), ("serving", "b", "receiver")):
            peak = o["rss_peak"][node]
            anchors = [f"rsync {mb(rs['rss_peak'][rs_side])}" if "rss_peak" in rs else ""]
            if "rss_peak" in st:
                anchors.append(f"syncthing {mb(st['rss_peak'][st_node])}")
            line(f"RSS peak, {node} node", mb(peak), ", ".join(a for a in anchors if a), None, "≤ 150 MB",
                 peak <= 150e6)  # fmt: skip
        for node, st_node in (("driver", "a"), ("serving", "b")):
            idle = o["rss_idle"][node]
            anchor = f"syncthing {mb(st['rss_idle'][st_node])}" if "rss_idle" in st else ""
            line(f"RSS idle in sync, {node} node", mb(idle), anchor, None, "≤ 150 MB", idle <= 150e6)
        for node, st_node in (("driver", "a"), ("serving", "b")):
            per_idle = (o["rss_idle"][node] - o["rss_before"][node]) / n
            per_peak = (o["rss_peak"][node] - o["rss_before"][node]) / n
            anchor = ""
            if "rss_idle" in st:
                anchor = f"syncthing {(st['rss_idle'][st_node] - st['rss_before'][st_node]) / n:.0f} B"
            line(f"memory per file, {node} (idle)", f"{per_idle:.0f} B", anchor, None, "≤ 300 B", per_idle <= 300)
            million = o["rss_before"][node] + 1e6 * per_idle
            line("  → 1,000,000 files, idle", mb(million), "", None, "", None)
            line("  peak per file", f"{per_peak:.0f} B", "", None, "", None)
    if "index_bytes" in o:
        ours_index = sum(o["index_bytes"].values())
        anchor = f"syncthing {mb(sum(st['index_bytes'].values()))}" if "index_bytes" in st else "rsync none"
        line("index on disk (both nodes)", mb(ours_index), anchor, None, "", None)
        line("  per file (both nodes)", f"{ours_index / n:.0f} B", "", None, "", None)
