"""Folder sync's merging beside ``git merge-file`` and GNU ``diff3 -m``, measured in the same run on this machine.

Run: ``scripts/with-keyring.sh .venv/bin/python bench/sync_merge.py`` (``--json`` for one JSON document).

Figures:
- a clean three-way merge of a text file at the default cap (1 MiB, ~27,000 lines, one edit near each end), ours
  (``merge3``, in process) beside ``git merge-file -p`` and ``diff3 -m`` on the same three files (each a process);
- one sync pass that merges a concurrent edit of a 256 KiB text file, beside the same pass making a conflict copy
  instead (merging switched off), with the real engine and embedded SFTP server in one process;
- what keeping ancestors costs: syncing 2,000 new small text files with merging on, beside the same with it off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noizylab_desktop.services.sync.merge import merge_text  # noqa: E402
from tests.sync_harness import SyncPair  # noqa: E402

REPEAT = 7


def text_of(size: int) -> bytes:
    lines, n, total = [], 0, 0
    while total < size:
        line = f"line {n:06d}: the quick brown fox jumps over the lazy dog\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)


def edit(data: bytes, index: int, text: str) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[index] = text.encode() + b"\n"
    return b"".join(lines)


def best(fn: Any) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_merge(base_dir: Path) -> dict[str, Any]:
    base = text_of(1024 * 1024 - 4096)
    n = base.count(b"\n")
    mine, theirs = edit(base, 10, "edited here"), edit(base, n - 10, "edited there")
    files = {}
    for name, data in (("mine", mine), ("base", base), ("theirs", theirs)):
        files[name] = base_dir / f"{name}.txt"
        files[name].write_bytes(data)
    expected = edit(mine, n - 10, "edited there")
    assert merge_text(base, mine, theirs).data == expected
    git = subprocess.run(["git", "merge-file", "-p", *map(str, files.values())], capture_output=True, check=True)
    assert git.stdout == expected
    ours = best(lambda: merge_text(base, mine, theirs))
    git_s = best(
        lambda: subprocess.run(["git", "merge-file", "-p", *map(str, files.values())], capture_output=True, check=True)
    )
    diff3_s = best(
        lambda: subprocess.run(
            ["diff3", "-m", str(files["mine"]), str(files["base"]), str(files["theirs"])], capture_output=True
        )
    )
    return {"bytes": len(base), "lines": n, "ours_s": ours, "git_merge_file_s": git_s, "diff3_s": diff3_s}


async def sync_pass(base_dir: Path, merge: bool) -> float:
    """Seconds for the sync pass that settles a concurrent edit of a 256 KiB text file."""
    pair = SyncPair(base_dir)
    await pair.start()
    try:
        assert pair.engine is not None
        pair.engine.merger.max_bytes = 1024 * 1024 if merge else 0
        text = text_of(256 * 1024)
        (pair.local / "notes.txt").write_bytes(text)
        assert await pair.sync()
        n = text.count(b"\n")
        (pair.local / "notes.txt").write_bytes(edit(text, 5, "edited here"))
        (pair.remote / "notes.txt").write_bytes(edit(text, n - 5, "edited there"))
        start = time.perf_counter()
        assert await pair.sync()
        took = time.perf_counter() - start
        copies = [p for p in pair.local.iterdir() if ".sync-conflict-" in p.name]
        assert (not copies) if merge else len(copies) == 1
        return took
    finally:
        await pair.close()


async def small_files(base_dir: Path, merge: bool, count: int) -> float:
    pair = SyncPair(base_dir)
    await pair.start()
    try:
        assert pair.engine is not None
        pair.engine.merger.max_bytes = 1024 * 1024 if merge else 0
        for i in range(count):
            (pair.local / f"f{i:05d}.txt").write_bytes(f"small text file {i}\n".encode() * 40)
        start = time.perf_counter()
        assert await pair.sync()
        return time.perf_counter() - start
    finally:
        await pair.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--files", type=int, default=2000, help="small files for the ancestor-cost figure (2,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nz-bench-merge-") as tmp:
        base = Path(tmp)
        results: dict[str, Any] = {"merge": bench_merge(base)}
        passes: dict[str, list[float]] = {"merge": [], "copy": []}
        for i in range(3):
            for kind in ("merge", "copy"):
                passes[kind].append(asyncio.run(sync_pass(base / f"pass-{kind}-{i}", kind == "merge")))
        results["pass_s"] = {k: statistics.median(v) for k, v in passes.items()}
        # Alternate the order so that neither side always runs on a warmer cache; the median of three each.
        runs: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(3):
            for kind in ("off", "on") if i % 2 == 0 else ("on", "off"):
                runs[kind].append(asyncio.run(small_files(base / f"small-{kind}-{i}", kind == "on", args.files)))
        small = {k: statistics.median(v) for k, v in runs.items()}
        results["small_files"] = {"count": args.files, **small}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    m, p, s = results["merge"], results["pass_s"], results["small_files"]
    print(f"machine: {os.cpu_count()} CPUs (a shared machine: compare within a run)")
    row("figure", "ours", "anchor (same run)", None)
    ms = 1000
    label = f"clean 3-way merge, {m['bytes'] / 1024:.0f} KiB / {m['lines']:,} lines"
    row(
        label,
        f"{m['ours_s'] * ms:.1f} ms",
        f"git merge-file {m['git_merge_file_s'] * ms:.1f} ms",
        m["ours_s"] / m["git_merge_file_s"],
    )
    row("", "", f"diff3 -m {m['diff3_s'] * ms:.1f} ms", m["ours_s"] / m["diff3_s"])
    row(
        "sync pass settling a concurrent edit (256 KiB text)",
        f"{p['merge'] * ms:.1f} ms",
        f"conflict copy {p['copy'] * ms:.1f} ms",
        p["merge"] / p["copy"],
    )
    row(
        f"{s['count']:,} new small text files, ancestors kept",
        f"{s['on']:.2f} s",
        f"ancestors off {s['off']:.2f} s",
        s["on"] / s["off"],
    )
    return 0


def row(figure: str, ours: str, anchor: str, ratio: float | None) -> None:
    print(f"{figure:54} {ours:>10} {anchor:>28} {f'{ratio:7.2f}' if ratio is not None else ''}")


if __name__ == "__main__":
    sys.exit(main())
