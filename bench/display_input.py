"""Remote-desktop input: how long a key takes from the viewer to a window on the host, beside local XTEST (the anchor).

Run: ``scripts/with-keyring.sh .venv/bin/python bench/display_input.py [--keys N] [--json]``.

The host's screen is a private Xvfb with the tests' probe window (``tests/integration/display_screen.py input``),
which prints each key it receives. Ours is the real path: two ``noizylab`` node processes, paired, a viewing session
over mTLS (``ViewerSession``), the key sent by character and injected by the host through XTEST. The anchor sends
the same keys with XTEST straight from this process to the same X server: the floor our path adds its cost to.
Both are timed from sending a key to reading the probe's line for it, one key at a time (``key`` p50/p95); then a
burst of ``--keys`` characters sent back to back is timed until the last one arrives (``burst`` keys per second).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noizylab_desktop._proto import noizylab_display_pb2 as dpb  # noqa: E402
from tests.conftest import NodeProcess  # noqa: E402
from tests.integration.display_support import ScreenApp, start_pair, viewer  # noqa: E402
from tests.xvfb import Xvfb  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog "


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def measure(send: Callable[[str], Awaitable[None]], probe: ScreenApp, keys: int) -> dict[str, float]:
    """Per-key latency (ms) one at a time, then burst throughput (keys/s)."""
    single: list[float] = []
    for ch in TEXT[: min(keys, len(TEXT))]:
        started = time.perf_counter()
        await send(ch)
        await asyncio.to_thread(probe.expect, "key", 10)
        single.append((time.perf_counter() - started) * 1000)
    burst = (TEXT * (keys // len(TEXT) + 1))[:keys]
    started = time.perf_counter()
    for ch in burst:
        await send(ch)
    got = [await asyncio.to_thread(probe.expect, "key", 20) for _ in burst]
    elapsed = time.perf_counter() - started
    if [line[5:-1] for line in got] != list(burst):
        raise SystemExit("bench: the burst did not arrive whole and in order")
    return {"key_p50_ms": percentile(single, 50), "key_p95_ms": percentile(single, 95), "burst_keys_s": keys / elapsed}


async def ours(alpha: NodeProcess, beta: NodeProcess, probe: ScreenApp, keys: int) -> dict[str, float]:
    async with viewer(alpha, beta, control=True) as session:
        for down in (True, False):
            await session.send_input(dpb.InputEvent(button=dpb.PointerButton(button=1, down=down, x=250, y=190)))
        await asyncio.to_thread(probe.expect, "click", 20)

        async def send(ch: str) -> None:
            for down in (True, False):
                await session.send_input(dpb.InputEvent(key=dpb.Key(down=down, keysym=ord(ch))))

        return await measure(send, probe, keys)


async def anchor(display: str, probe: ScreenApp, keys: int) -> dict[str, float]:
    from Xlib import XK, X
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    conn = xdisplay.Display(display)
    try:

        async def send(ch: str) -> None:
            code = conn.keysym_to_keycode(XK.string_to_keysym("space" if ch == " " else ch))
            xtest.fake_input(conn, X.KeyPress, code)
            xtest.fake_input(conn, X.KeyRelease, code)
            conn.sync()

        return await measure(send, probe, keys)
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    screen = Xvfb("640x480")
    with tempfile.TemporaryDirectory(prefix="noizylab-bench-input-") as root:
        alpha = NodeProcess(Path(root) / "alpha", "alpha")
        beta = NodeProcess(Path(root) / "beta", "beta")
        probe: ScreenApp | None = None
        try:
            start_pair(alpha, beta, screen.display, "display", "control")
            probe = ScreenApp(screen.display, "input", "200", "150", "300", "200")
            figures = {
                "ours": asyncio.run(ours(alpha, beta, probe, args.keys)),
                "anchor": asyncio.run(anchor(screen.display, probe, args.keys)),
            }
        finally:
            if probe is not None:
                probe.stop()
            alpha.stop()
            beta.stop()
            screen.stop()
    ratio = {k: figures["ours"][k] / max(1e-9, figures["anchor"][k]) for k in figures["ours"]}
    if args.json:
        print(json.dumps({**figures, "ratio": ratio}))
        return 0
    print(f"{'':22}{'ours':>12}{'anchor':>12}{'ratio':>8}")
    for key in figures["ours"]:
        print(f"{key:22}{figures['ours'][key]:12.2f}{figures['anchor'][key]:12.2f}{ratio[key]:8.2f}")
    print("anchor: XTEST from the bench process straight to the host's X server; ours: viewer → mTLS → host → XTEST")
    return 0


if __name__ == "__main__":
    sys.exit(main())
