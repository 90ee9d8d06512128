"""How long a node takes to start on this interpreter, and where its imports spend the time.

Run on the Windows interpreter by the tier: ``scripts/windows-tier.sh -- tests/windows/start_profile.py [RUNS]``.
Each run is a fresh home: ``noizylab start`` (the command returns once the detached node answers), ``status --json``
and ``stop``, each timed, beside ``python -c pass`` as the anchor. On a busy machine the wall times mostly measure the
wait for a core (and Wine's GetProcessTimes gave every process the same ~1.1 s, so CPU time cannot be read here): the
number of modules each process imports is the figure that does not move with the load. A last run sets
``PYTHONPROFILEIMPORTTIME`` and prints the slowest imports (cumulative) of the command and of the node it started,
which is what ``-X importtime`` would show for each process; the raw logs are left in ./start-profile/.
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


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds of ``args`` and its stderr; a failure ends the profile with its message."""
    began = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return time.perf_counter() - began, result.stderr


def slowest(text: str, count: int) -> list[str]:
    """The ``count`` slowest imports of an importtime log, by cumulative time, indented by depth."""
    rows = [(int(m[2]), len(m[3]) // 2, m[4]) for m in IMPORT_LINE.finditer(text)]
    rows.sort(reverse=True)
    return [f"{us / 1e6:7.3f} s  {'  ' * depth}{name}" for us, depth, name in rows[:count]]


def median_line(name: str, seconds: list[float], anchor: float) -> str:
    median = statistics.median(seconds)
    each = ", ".join(f"{s:.2f}" for s in seconds)
    return f"  {name:24s} median {median:6.2f} s ({median / anchor:5.1f}x the anchor)  [{each}]"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    anchor = [run([sys.executable, "-c", "pass"])[0] for _ in range(runs)]
    figures: dict[str, list[float]] = {"start": [], "status": [], "stop": []}
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(runs):
            home = Path(scratch) / f"node{index}"
            write_config(home, f"node{index}")
            base = [*NOIZYLAB, "--home", str(home)]
            for step, args in (("start", ["start"]), ("status", ["status", "--json"]), ("stop", ["stop"])):
                figures[step].append(run([*base, *args])[0])
        anchored = statistics.median(anchor) or 0.01
        print(f"{runs} fresh homes on {sys.platform} {sys.version.split()[0]}:")
        print(median_line("python -c pass (anchor)", anchor, anchored))
        for step, seconds in figures.items():
            print(median_line(step, seconds, anchored))
        home = Path(scratch) / "profiled"
        write_config(home, "profiled")
        base = [*NOIZYLAB, "--home", str(home)]
        env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
        started = run([*base, "start"], env)[1]
        status = run([*base, "status", "--json"], env)[1]
        run([*base, "stop"])
        console = (home / "logs" / "node-console.log").read_text(encoding="utf-8", errors="replace")
        kept = Path("start-profile")
        kept.mkdir(exist_ok=True)
        for name, text in (("start", started), ("node", console), ("status", status)):
            (kept / f"{name}.importtime").write_text(text)
            total = sum(int(m[2]) for m in IMPORT_LINE.finditer(text) if len(m[3]) == 1)
            print(f"  {name}: {len(IMPORT_LINE.findall(text))} modules imported, top-level imports {total / 1e6:.2f} s")
        print("the command's slowest imports (start):")
        print("\n".join(slowest(started, 25)))
        print("the node's slowest imports:")
        print("\n".join(slowest(console, 40)))


if __name__ == "__main__":
    main()
