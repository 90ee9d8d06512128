"""Where a bench's nodes run, shared by every feature bench: ``--host node``, ``--host tray`` or ``--host both``.

- ``node`` (the default): ``noizylab start``, the headless node on a plain asyncio loop, as servers run it.
- ``tray``: ``noizylab`` itself, the real tray app process (a QApplication running asyncio through qasync and hosting
  the same ``Node``), as people run it. Each tray shows its icon on an X display with trayer as the system tray: the
  display the bench gives the node (the clipboard's, the captured screen), else a private Xvfb started here.
- ``both``: the bench runs once per host, headless first, and then prints each figure of both runs side by side
  with the tray's slowdown (tray/node for times, node/tray for rates) against the 1.2x target.

Every node a bench starts runs on the chosen host, as on a person's machines where each runs the tray. The home's
first run is marked done before a tray starts: its first-run window would otherwise open over a captured screen.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from noizylab_desktop.core.config import Paths  # noqa: E402
from noizylab_desktop.node import first_run  # noqa: E402
from tests.xvfb import Xvfb  # noqa: E402

NOIZYLAB = [sys.executable, "-m", "noizylab_desktop"]
HOSTS = ("node", "tray")
TRAY_LIMIT = 1.2  # issue #23: each tray figure within 1.2x of the headless one
START_S = 60.0
STOP_S = 30.0
T = TypeVar("T")


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--host node|tray|both`` on a bench's command line."""
    parser.add_argument(
        "--host",
        choices=(*HOSTS, "both"),
        default="node",
        help="where the nodes run: node (noizylab start, plain asyncio; the default), tray (the tray app, qasync, on"
        " a private Xvfb) or both (one run each, then the figures side by side with tray/node ratios)",
    )


def chosen(choice: str) -> list[str]:
    """The hosts that ``--host choice`` runs, in order."""
    return list(HOSTS) if choice == "both" else [choice]


def _deadline_wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _tray_owned(display: str) -> bool:
    """Whether something owns the system tray selection of ``display`` (trayer, once it is up)."""
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display)
    try:
        owner = connection.get_selection_owner(connection.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return bool(owner != X.NONE)
    finally:
        connection.close()


def read_pid(home: Path) -> int | None:
    """The pid in the home's runtime file (the process hosting its node), or None before the node has started."""
    runtime = home / "state" / "runtime.json"
    try:
        return int(json.loads(runtime.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


class Hosting:
    """Starts nodes on one host and stops them (``with Hosting("tray") as host: host.start(home)``)."""

    def __init__(self, kind: str) -> None:
        if kind not in HOSTS:
            raise ValueError(f"unknown host {kind!r}: one of {', '.join(HOSTS)}")
        self.kind = kind
        self._screen: Xvfb | None = None
        self._trayers: dict[str, subprocess.Popen[bytes]] = {}
        self._trays: dict[Path, subprocess.Popen[bytes]] = {}
        self._started: list[Path] = []  # every home started here, stopped by ``close`` unless stopped before

    def start(self, home: Path, display: str | None = None) -> int:
        """Start the node of ``home`` (on ``display`` when given) and wait until it runs; the pid hosting it."""
        env = {**os.environ}
        if display is not None:
            env["DISPLAY"] = display
        self._started.append(home)
        if self.kind == "node":
            done = subprocess.run([*NOIZYLAB, "--home", str(home), "start"], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"noizylab start ({home.name}): {done.stderr.strip()}")
            pid = read_pid(home)
            assert pid is not None, "noizylab start returns once the runtime file is written"
            return pid
        return self._start_tray(home, display or self._private_display(), env)

    def _private_display(self) -> str:
        if self._screen is None:
            self._screen = Xvfb("1280x800")
        return self._screen.display

    def _start_tray(self, home: Path, display: str, env: dict[str, str]) -> int:
        self._system_tray(display)
        paths = Paths.resolve(home)
        paths.ensure()
        if not first_run.is_done(paths):
            first_run.mark_done(paths, "terminal")
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
        env.pop("WAYLAND_DISPLAY", None)
        log = open(home / "tray-output.log", "wb")  # noqa: SIM115 - the child holds it; closed with the process
        with log:
            tray = subprocess.Popen([*NOIZYLAB, "--home", str(home)], env=env, stdout=log, stderr=subprocess.STDOUT)
        self._trays[home] = tray

        def up() -> bool:
            if tray.poll() is not None:
                said = (home / "tray-output.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"the tray for {home.name} exited ({tray.returncode}) at start: {' | '.join(said)}")
            return read_pid(home) == tray.pid

        _deadline_wait(up, START_S, f"the tray for {home.name} to run its node")
        return tray.pid

    def _system_tray(self, display: str) -> None:
        """trayer on ``display``, once, so that the tray app finds a system tray there.

        A trayer that exits at once is started again (twice at most): on this shared machine, one started right
        after its Xvfb was seen now and then to say "cannot open display" about a display that answers.
        """
        if display in self._trayers:
            return
        env = {**os.environ, "DISPLAY": display}
        env.pop("WAYLAND_DISPLAY", None)
        for attempt in range(3):
            trayer = subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "28"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self._trayers[display] = trayer

            def owned(trayer: subprocess.Popen[bytes] = trayer) -> bool:
                return trayer.poll() is not None or _tray_owned(display)

            _deadline_wait(owned, START_S, f"trayer to own the system tray of {display}")
            if trayer.poll() is None:
                return
            said = " | ".join(trayer.communicate()[1].decode(errors="replace").strip().splitlines()[-2:])
            if attempt == 2:
                raise RuntimeError(f"trayer exited ({trayer.returncode}) on {display}, three times: {said}")
            print(f"hosting: trayer exited on {display} ({said}): starting it again", file=sys.stderr, flush=True)
            time.sleep(0.5)  # a pause before trying again, not a wait for anything

    def stop(self, home: Path) -> None:
        """Stop the node of ``home`` (``noizylab stop`` ends a tray too); a tray that does not go is killed."""
        if home in self._started:
            self._started.remove(home)
        subprocess.run([*NOIZYLAB, "--home", str(home), "stop"], capture_output=True, timeout=STOP_S + 30)
        tray = self._trays.pop(home, None)
        if tray is not None:
            try:
                tray.wait(STOP_S)
            except subprocess.TimeoutExpired:
                tray.kill()
                tray.wait()

    def close(self) -> None:
        """Stop what is left: the nodes started here (and a stopped tray's process to reap), trayers, Xvfb."""
        for home in [*self._started, *(h for h in self._trays if h not in self._started)]:
            self.stop(home)
        for trayer in self._trayers.values():
            trayer.terminate()
            trayer.communicate(timeout=10)  # reaped, and its stderr pipe closed
        self._trayers.clear()
        if self._screen is not None:
            self._screen.stop()
            self._screen = None

    def __enter__(self) -> Hosting:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ node beside tray


@dataclass(frozen=True)
class Figure:
    """One figure of a bench run, for the node/tray comparison; ``anchor``: the same figure of the anchor measured
    in the same run (rsync, ffmpeg, raw TCP...), which moves with the machine's load as ours does."""

    name: str
    value: float
    unit: str
    higher_is_better: bool = False
    anchor: float | None = None


def slowdown(node: float, tray: float, higher_is_better: bool) -> float | None:
    """How many times worse the tray's figure is (1.0: the same; < 1: the tray did better)."""
    if node == tray:
        return 1.0
    if higher_is_better:
        return node / tray if tray > 0 else None
    return tray / node if node > 0 else None


def compare(node: list[Figure], tray: list[Figure], limit: float = TRAY_LIMIT) -> list[dict[str, Any]]:
    """The figures of both runs, each with the tray's slowdown and whether it is within ``limit``.

    Where both runs measured an anchor, ``adjusted`` is the slowdown of ours relative to each run's anchor (tray/its
    anchor over node/its anchor): a machine busier in one run than in the other cancels out of it, so it decides.
    """
    by_name = {f.name: f for f in tray}
    rows = []
    for n in node:
        t = by_name.get(n.name)
        if t is None:
            continue
        factor = slowdown(n.value, t.value, n.higher_is_better)
        adjusted = None
        if n.anchor and t.anchor:
            adjusted = slowdown(n.value / n.anchor, t.value / t.anchor, n.higher_is_better)
        decides = adjusted if adjusted is not None else factor
        rows.append({
            "figure": n.name, "unit": n.unit, "node": n.value, "tray": t.value,
            "tray_over_node": t.value / n.value if n.value else None, "slowdown": factor,
            "node_anchor": n.anchor, "tray_anchor": t.anchor, "adjusted": adjusted,
            "within": decides is not None and decides <= limit,
        })  # fmt: skip
    return rows


def print_comparison(rows: list[dict[str, Any]], limit: float = TRAY_LIMIT) -> None:
    """The comparison as a table, with the load average now (a shared machine: the ratio is what to compare)."""

    def number(x: float | None, suffix: str = "") -> str:
        return "-" if x is None else f"{x:,.2f}{suffix}"

    print(f"\nnode (noizylab start, asyncio) beside tray (noizylab, qasync); load average {load_average()}")
    print("slowdown: tray/node for times, node/tray for rates; adjusted: the same over each run's own anchor")
    print(
        f"{'figure':<42} {'node':>10} {'anchor':>9} {'tray':>10} {'anchor':>9} {'slowdown':>9} {'adjusted':>9}"
        f"  <= {limit:g}x"
    )
    for r in rows:
        name = f"{r['figure']}{' ' + r['unit'] if r['unit'] else ''}"
        print(
            f"{name:<42} {number(r['node']):>10} {number(r['node_anchor']):>9} {number(r['tray']):>10}"
            f" {number(r['tray_anchor']):>9} {number(r['slowdown'], 'x'):>9} {number(r['adjusted'], 'x'):>9}"
            f"  {'ok' if r['within'] else 'MISS'}"
        )


def load_average() -> str:
    """``/proc/loadavg``'s three averages (or ``os.getloadavg``)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_hosts(
    choice: str,
    measure: Callable[[str], T],
    figures: Callable[[T], list[Figure]],
    report: Callable[[str, T], None] | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Run ``measure(host)`` on each host of ``--host choice`` and report each run (``report``, unless ``as_json``);
    with both hosts, print the comparison too (or return it, with ``as_json``). The results by host, plus
    ``tray_vs_node`` with both and ``load_average`` (at the end)."""
    results: dict[str, Any] = {}
    for host in chosen(choice):
        result = measure(host)
        results[host] = result
        if report is not None and not as_json:
            if choice == "both":
                print(f"\n=== host: {host} ({'noizylab start, asyncio' if host == 'node' else 'tray app, qasync'})")
            report(host, result)
    if choice == "both":
        rows = compare(figures(results["node"]), figures(results["tray"]))
        results["tray_vs_node"] = rows
        if not as_json:
            print_comparison(rows)
    results["load_average"] = load_average()
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    return results
