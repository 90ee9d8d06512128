"""Remote desktop at 1920×1080 on loopback, beside ``ffmpeg -f x11grab … libx264 -tune zerolatency`` (the anchor).

Run: ``scripts/with-keyring.sh .venv/bin/python bench/display.py`` (``--seconds S`` per phase, ``--json``,
``--size 3840x2160`` for a 4K screen: the Xvfb and ffmpeg's grab both take that size; ``--host tray`` runs the nodes
in the tray app, ``--host both`` once each and side by side: bench/hosting.py).

Both pipelines capture the same private Xvfb (1920x1080x24), on which a helper app draws; both are decoded by PyAV
in this process, and latency is read from the screen, not from any pipeline's own stamps: the helper draws a frame
counter as black/white blocks and prints when each value was drawn; the decoded picture's counter gives the time
from drawing to decoding. Ours is the real path: two ``noizylab`` node processes, paired, the viewer's session over
mTLS (``ViewerSession``, as ``noizylab view`` uses). The anchor is ffmpeg grabbing and encoding the same screen,
its packets framed by NUT on a pipe (a raw H.264 pipe would hold each frame until the next one starts).

Phases: ``changing`` (the counter and a moving band, 60 updates a second: draw-to-decoded p50/p95, decoded fps,
CPU cores of the host process, bitrate), ``idle`` (a still pattern: bitrate), ``typing`` (10 characters a second:
bitrate). Targets (issue #5): p50 ≤ 30 ms, p95 ≤ 50 ms, 60 fps at ≤ 1.5 cores, idle ≤ 100 kbps, typing ≤ 1.5 Mbps.

``--trace`` also splits our drawn-to-decoded time by stage (p50 and p95 over the pictures whose counter was read): the
wait from drawing to the grab, the host's stamps carried in each frame (grab, memcmp, mailbox, colour conversion,
encode, the hop from the encode thread to the gRPC writer), the network and decode here, and reading the counter.
All of it is one machine's clock, so the stages add up to the latency measured from the screen.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import hosting  # noqa: E402
from noizylab_desktop.core.transport import secure_channel  # noqa: E402
from noizylab_desktop.services.display.client import ViewerSession  # noqa: E402
from noizylab_desktop.services.display.decoder import Decoder  # noqa: E402
from tests.conftest import NodeProcess, wait_for  # noqa: E402
from tests.integration.display_screen import read_counter  # noqa: E402
from tests.integration.display_support import SCREEN_APP  # noqa: E402
from tests.xvfb import Xvfb  # noqa: E402

WIDTH, HEIGHT = 1920, 1080


@dataclass
class Phase:
    pipeline: str
    phase: str
    seconds: float
    frames: int
    fps: float
    kbps: float
    cores: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    read: int = 0


class Helper:
    """The drawing app, with a thread that records when each counter value was drawn."""

    def __init__(self, display: str, mode: str, rate: int) -> None:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        self.process = subprocess.Popen(
            [sys.executable, str(SCREEN_APP), mode, str(rate)], env=env, stdout=subprocess.PIPE, text=True
        )
        self.drawn: dict[int, float] = {}
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(20):
            raise RuntimeError("the drawing app did not start")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.startswith("drawn"):
                _, n, at = line.split()
                self.drawn[int(n)] = float(at)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Tally:
    """Decoded pictures and their counters during one phase."""

    def __init__(self, helper: Helper | None, read_counters: bool, decoder: Any = None) -> None:
        self.helper = helper
        self.read_counters = read_counters
        self.decoder = decoder or Decoder()
        self.reset()

    def reset(self) -> None:
        """Start counting now (the decoder keeps its state: the next frames refer to earlier ones)."""
        self.frames = 0
        self.bytes = 0
        self.seen: list[tuple[int, float]] = []
        self.traces: dict[int, dict[str, float]] = {}

    def add(self, data: Any, frame: Any = None, received: float = 0.0) -> None:
        """Count and decode one frame: bytes (ours, ``frame`` its message) or a demuxed packet (the anchor's)."""
        self.bytes += len(data) if isinstance(data, bytes) else data.size
        for image in self.decoder.decode(data):
            decoded = time.time()
            self.frames += 1
            if self.read_counters:
                gray = image.to_ndarray(format="gray")
                n, at = read_counter(gray, image.width, image.height), time.time()
                self.seen.append((n, at))
                if frame is not None and n not in self.traces:
                    self.traces[n] = stages(frame, received, decoded, at)

    def trace(self, q: float) -> dict[str, float]:
        """Milliseconds per stage (the ``q`` quantile) over the pictures whose counter was read first in them."""
        assert self.helper is not None
        drawn = self.helper.drawn
        firsts: dict[int, float] = {}
        for n, at in self.seen:
            firsts.setdefault(n, at)
        rows = [
            {"draw to grab": (self.traces[n]["grabbed at"] - drawn[n]) * 1000, **self.traces[n]}
            for n, at in firsts.items()
            if n in drawn and n in self.traces and at >= drawn[n]
        ]
        keys = [key for key in rows[0] if key != "grabbed at"] if rows else []
        return {key: percentile([row[key] for row in rows], q) for key in keys}

    def result(self, pipeline: str, phase: str, seconds: float, cores: float) -> Phase:
        out = Phase(
            pipeline, phase, seconds, self.frames, self.frames / seconds, self.bytes * 8 / seconds / 1000, cores
        )
        if self.read_counters and self.helper is not None:
            drawn = self.helper.drawn
            # The first picture showing value n was drawn at drawn[n]; later pictures with the same n are repeats.
            firsts: dict[int, float] = {}
            for n, at in self.seen:
                firsts.setdefault(n, at)
            latencies = [(at - drawn[n]) * 1000 for n, at in firsts.items() if n in drawn and at >= drawn[n]]
            if latencies:
                out.p50_ms, out.p95_ms, out.read = (
                    percentile(latencies, 0.5),
                    percentile(latencies, 0.95),
                    len(latencies),
                )
        return out


def stages(frame: Any, received: float, decoded: float, read: float) -> dict[str, float]:
    """One frame's stages in ms from its host stamps and the times here (one clock: both nodes run on this machine)."""
    return {
        "grabbed at": frame.captured_at,
        "grab": frame.capture_ms,
        "memcmp": frame.compare_ms,
        "mailbox": frame.queued_ms,
        "convert": frame.convert_ms,
        "encode": frame.encode_ms - frame.convert_ms,
        "to writer": (frame.sent_at - frame.handed_at) * 1000,
        "network": (received - frame.sent_at) * 1000,
        "decode": (decoded - received) * 1000,
        "read counter": (read - decoded) * 1000,
    }


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


async def measure_ours(alpha: NodeProcess, beta: NodeProcess, helper: Helper | None, phase: str, seconds: float,
                       settle: float, trace: bool = False) -> Phase:  # fmt: skip
    tally = Tally(helper, phase == "changing")
    # The session's own channel, closed at the end: a channel left open complains once its loop has closed.
    channel = secure_channel(beta.identity(), alpha.identity().cert_pem, alpha.grpc_address)
    async with ViewerSession(channel, alpha.name) as session:
        frames = session.frames().__aiter__()
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            frame = await anext(frames)
            if frame.data:
                tally.add(frame.data)
        tally.reset()
        cpu0, t0 = cpu_seconds(alpha.pid), time.monotonic()
        while time.monotonic() - t0 < seconds:
            frame = await anext(frames)
            if frame.data:
                tally.add(frame.data, frame, time.time())
            session.last_seq = frame.seq or session.last_seq
        wall = time.monotonic() - t0
        cores = (cpu_seconds(alpha.pid) - cpu0) / wall
    await channel.close()
    if trace and phase == "changing":
        for q in (0.5, 0.95):
            split = tally.trace(q)
            line = ", ".join(f"{k} {v:.1f}" for k, v in split.items())
            print(f"trace     noizylab        p{int(q * 100)} ms: {line} (sum {sum(split.values()):.1f})", flush=True)
    return tally.result("noizylab", phase, wall, cores)


def measure_ffmpeg(display: str, helper: Helper | None, phase: str, seconds: float, settle: float,
                   size: str = f"{WIDTH}x{HEIGHT}") -> Phase:  # fmt: skip
    import av

    command = [
        "ffmpeg", "-loglevel", "error", "-f", "x11grab", "-framerate", "60", "-video_size", size,
        "-draw_mouse", "0", "-i", display, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-flush_packets", "1", "-f", "nut", "-",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, bufsize=0)
    try:
        assert process.stdout is not None
        container = av.open(process.stdout, format="nut", options={"probesize": "32"})
        assert isinstance(container, av.container.InputContainer)
        stream = container.streams.video[0]
        # The demuxed stream's own decoder: NUT carries SPS/PPS as extradata, not in the packets.
        stream.codec_context.thread_type = "SLICE"
        stream.codec_context.options = {"flags": "low_delay"}

        class StreamDecoder:
            def decode(self, packet: Any) -> list[Any]:
                return list(stream.codec_context.decode(packet))

        tally = Tally(helper, phase == "changing", StreamDecoder())
        started = time.monotonic()
        cpu0 = t0 = None
        for packet in container.demux(video=0):
            if packet.size == 0:
                continue
            now = time.monotonic()
            if t0 is None and now - started >= settle:
                tally.reset()
                cpu0, t0 = cpu_seconds(process.pid), now
            tally.add(packet)
            if t0 is not None and now - t0 >= seconds:
                break
        assert cpu0 is not None and t0 is not None
        wall = time.monotonic() - t0
        cores = (cpu_seconds(process.pid) - cpu0) / wall
        return tally.result("ffmpeg x11grab", phase, wall, cores)
    finally:
        process.kill()
        process.wait()


def ratio(ours: float | None, anchor: float | None) -> str:
    if ours is None or anchor is None or anchor == 0:
        return "-"
    return f"{ours / anchor:.2f}×"


def screen_size(text: str) -> str:
    """``WxH`` with even sides (H.264 4:2:0), as Xvfb and ffmpeg take it."""
    try:
        width, height = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 3840x2160") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be even and at least 64")
    return f"{width}x{height}"


PHASES = (("changing", "changing", 60, 1.5), ("idle", "pattern", 0, 3.0), ("typing", "typing", 10, 1.5))


def measure(args: argparse.Namespace, host: str) -> list[dict[str, Any]]:
    """Each phase, ours (its nodes on ``host``, capturing the private screen) then the anchor: rows of ``Phase``."""
    results: list[Phase] = []
    screen = Xvfb(args.size)
    with tempfile.TemporaryDirectory() as tmp, hosting.Hosting(host) as nodes:
        alpha = NodeProcess(Path(tmp) / "alpha", "alpha")
        beta = NodeProcess(Path(tmp) / "beta", "beta")
        try:
            # Both on the captured screen, as before: a tray shows its icon there (trayer's panel, 28 px at the
            # top), and the ffmpeg anchor of the same run grabs that same screen.
            nodes.start(alpha.home, screen.display)
            nodes.start(beta.home, screen.display)
            beta.join(alpha.invite())
            wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online")
            alpha.cli("allow", "beta", "display")
            for phase, mode, rate, settle in PHASES:
                if phase not in args.phases.split(","):
                    continue
                helper = Helper(screen.display, mode, rate)
                try:
                    ours = asyncio.run(measure_ours(alpha, beta, helper, phase, args.seconds, settle, args.trace))
                    anchor = measure_ffmpeg(screen.display, helper, phase, args.seconds, settle, args.size)
                finally:
                    helper.stop()
                results += [ours, anchor]
        finally:
            nodes.close()
            screen.stop()
    return [asdict(r) for r in results]


def report(host: str, rows: list[dict[str, Any]]) -> None:
    """Each phase: ours, the anchor, and their ratios."""
    print(f"our nodes: {host}")
    for ours, anchor in zip(rows[::2], rows[1::2], strict=True):
        for r in (ours, anchor):
            lat = f"p50 {r['p50_ms']:6.1f} ms  p95 {r['p95_ms']:6.1f} ms" if r["p50_ms"] is not None else " " * 30
            print(f"{r['phase']:9} {r['pipeline']:15} {lat}  {r['fps']:5.1f} fps  {r['kbps']:8.0f} kbps  "
                  f"{r['cores']:4.2f} cores", flush=True)  # fmt: skip
        latency = f"p50 {ratio(ours['p50_ms'], anchor['p50_ms'])}  p95 {ratio(ours['p95_ms'], anchor['p95_ms'])}"
        rest = f"kbps {ratio(ours['kbps'], anchor['kbps'])}  cores {ratio(ours['cores'], anchor['cores'])}"
        print(f"{'':9} {'ratio':15} {latency}  fps {ratio(ours['fps'], anchor['fps'])}  {rest}", flush=True)


def figures(rows: list[dict[str, Any]]) -> list[hosting.Figure]:
    """Ours, for the node/tray comparison, each beside ffmpeg's of the same phase."""
    out = []
    for r, a in zip(rows[::2], rows[1::2], strict=True):
        if r["p50_ms"] is not None:
            out.append(hosting.Figure(f"display {r['phase']} p50", r["p50_ms"], "ms", anchor=a["p50_ms"]))
            out.append(hosting.Figure(f"display {r['phase']} p95", r["p95_ms"], "ms", anchor=a["p95_ms"]))
        if r["phase"] == "changing":
            out.append(hosting.Figure("display changing fps", r["fps"], "fps", True, a["fps"]))
            out.append(hosting.Figure("display changing host CPU", r["cores"], "cores", anchor=a["cores"]))
        else:
            out.append(hosting.Figure(f"display {r['phase']} bitrate", r["kbps"], "kbps", anchor=a["kbps"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per phase and pipeline")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trace", action="store_true", help="split our latency by stage (medians, ms)")
    parser.add_argument("--phases", default="changing,idle,typing", help="which phases to run, comma-separated")
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", type=screen_size, help="the screen, WxH (3840x2160: 4K)")
    hosting.add_argument(parser)
    args = parser.parse_args()
    if os.environ.get("NOIZYLAB_IN_TEST_KEYRING") != "1":
        print("run it as: scripts/with-keyring.sh .venv/bin/python bench/display.py", file=sys.stderr)
        return 2
    hosting.run_hosts(args.host, lambda host: measure(args, host), figures, report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
