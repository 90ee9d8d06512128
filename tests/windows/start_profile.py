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
import sysconfig
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


AGAINST_PTH = "_noizylab_profile_against.pth"


def main() -> None:
    """``start_profile.py [RUNS] [--against DIR]``: with DIR (a folder holding another ``noizylab_desktop``, e.g. the
    main branch's), each round times that package and this one in turn, on fresh homes, so that both see the same
    load; a .pth file in site-packages, removed at the end, puts DIR first on the path where the environment asks."""
    args = sys.argv[1:]
    against = ""
    if "--against" in args:
        at = args.index("--against")
        against = str(Path(args[at + 1]).resolve())
        del args[at : at + 2]
    runs = int(args[0]) if args else 3
    variants = {"this checkout": {**os.environ}}
    pth = Path(sysconfig.get_paths()["purelib"]) / AGAINST_PTH
    if against:
        pth.write_text('import os, sys; d = os.environ.get("NOIZYLAB_PROFILE_AGAINST"); d and sys.path.insert(0, d)\n')
        variants["against " + against] = {**os.environ, "NOIZYLAB_PROFILE_AGAINST": against}
    try:
        probe = [sys.executable, "-c", "import noizylab_desktop as n; print(n.__file__)"]
        for name, env in variants.items():
            print(f"{name}: {subprocess.run(probe, capture_output=True, text=True, env=env).stdout.strip()}")
        profile(runs, variants)
    finally:
        pth.unlink(missing_ok=True)


def profile(runs: int, variants: dict[str, dict[str, str]]) -> None:
    """Time each variant's start, status and stop ``runs`` times, interleaved; then profile each one's imports."""
    anchor = [run([sys.executable, "-c", "pass"])[0] for _ in range(runs)]
    figures = {name: {"start": [], "status": [], "stop": []} for name in variants}
    with tempfile.TemporaryDirectory() as scratch:
        order = list(variants)
        for index in range(runs + 1):  # the first round writes each package's bytecode: not counted
            for name in order if index % 2 else reversed(order):
                home = Path(scratch) / f"{len(name)}-{index}"
                write_config(home, f"node{index}")
                base = [*NOIZYLAB, "--home", str(home)]
                for step, args in (("start", ["start"]), ("status", ["status", "--json"]), ("stop", ["stop"])):
                    seconds = run([*base, *args], variants[name])[0]
                    if index:
                        figures[name][step].append(seconds)
        anchored = statistics.median(anchor) or 0.01
        print(f"{runs} fresh homes each on {sys.platform} {sys.version.split()[0]}, interleaved:")
        print(median_line("python -c pass (anchor)", anchor, anchored))
        for name, steps in figures.items():
            print(f" {name}:")
            for step, seconds in steps.items():
                print(median_line(step, seconds, anchored))
        for name, env in variants.items():
            home = Path(scratch) / f"profiled-{len(name)}"
            write_config(home, "profiled")
            base = [*NOIZYLAB, "--home", str(home)]
            timed_env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
            started = run([*base, "start"], timed_env)[1]
            status = run([*base, "status", "--json"], timed_env)[1]
            run([*base, "stop"], env)
            console = (home / "logs" / "node-console.log").read_text(encoding="utf-8", errors="replace")
            kept = Path("start-profile") / str(len(name))
            kept.mkdir(parents=True, exist_ok=True)
            print(f" {name}, imports:")
            for what, text in (("start", started), ("node", console), ("status", status)):
                (kept / f"{what}.importtime").write_text(text)
                total = sum(int(m[2]) for m in IMPORT_LINE.finditer(text) if len(m[3]) == 1)
                print(f"  {what}: {len(IMPORT_LINE.findall(text))} modules, top-level imports {total / 1e6:.2f} s")
            print("  the command's slowest imports (start):")
            print("\n".join(slowest(started, 12)))
            print("  the node's slowest imports:")
            print("\n".join(slowest(console, 25)))


if __name__ == "__main__":
    main()
