"""How long a node takes to start on this interpreter, and where its imports spend the time.

Run on the Windows interpreter by the tier: ``scripts/windows-tier.sh -- tests/windows/start_profile.py [RUNS]``.
Each run is a fresh home: ``noizylab start`` (the command returns once the detached node answers), ``status --json``
and ``stop``, each timed. A last run sets ``PYTHONPROFILEIMPORTTIME`` and prints the slowest imports (cumulative) of
the command and of the node it started, which is what `-X importtime` would show for each process.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import NOIZYLAB, write_config  # noqa: E402

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def timed(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds ``noizylab --home HOME ARGS`` took, and its result."""
    began = time.perf_counter()
    result = subprocess.run(
        [*NOIZYLAB, "--home", str(home), *args], capture_output=True, text=True, timeout=120, env=env
    )
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"noizylab {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return seconds, result


def slowest(text: str, count: int) -> list[str]:
    """The ``count`` slowest top-level-or-nested imports of an importtime log, by cumulative time."""
    rows = [(int(m[2]), len(m[3]) // 2, m[4]) for m in IMPORT_LINE.finditer(text)]
    rows.sort(reverse=True)
    return [f"{us / 1e6:7.3f} s  {'  ' * depth}{name}" for us, depth, name in rows[:count]]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    figures: dict[str, list[float]] = {"start": [], "status": [], "stop": []}
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(runs):
            home = Path(scratch) / f"node{index}"
            write_config(home, f"node{index}")
            for step, args in (("start", ("start",)), ("status", ("status", "--json")), ("stop", ("stop",))):
                figures[step].append(timed(home, *args)[0])
        bare = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(time.perf_counter() - began)
        print(f"{runs} fresh homes on {sys.platform} {sys.version.split()[0]}:")
        print(f"  python -c pass median {statistics.median(bare):6.2f} s")
        for step, seconds in figures.items():
            print(f"  {step:7s} median {statistics.median(seconds):6.2f} s  ({', '.join(f'{s:.2f}' for s in seconds)})")
        home = Path(scratch) / "profiled"
        write_config(home, "profiled")
        env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
        seconds, started = timed(home, "start", env=env)
        _, status = timed(home, "status", "--json", env=env)
        timed(home, "stop")
        console = (home / "logs" / "node-console.log").read_text(encoding="utf-8", errors="replace")
        kept = Path(os.environ.get("NOIZYLAB_PROFILE_DIR", "start-profile"))
        kept.mkdir(exist_ok=True)
        for name, text in (("start", started.stderr), ("node", console), ("status", status.stderr)):
            (kept / f"{name}.importtime").write_text(text)
            total = sum(int(m[2]) for m in IMPORT_LINE.finditer(text) if not m[3].strip(" ") and len(m[3]) <= 1)
            print(f"  {name}: top-level imports {total / 1e6:.2f} s")
        print(f"profiled start: {seconds:.2f} s; the command's slowest imports:")
        print("\n".join(slowest(started.stderr, 40)))
        print("the node's slowest imports:")
        print("\n".join(slowest(console, 60)))


if __name__ == "__main__":
    main()
