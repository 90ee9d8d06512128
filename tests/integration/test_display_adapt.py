"""Bitrate and frame-rate adaptation end to end: a viewer whose painter stalls makes the host slow down, then not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from noizylab_desktop.services.display.decoder import DecodeWorker, Picture
from tests.conftest import NodeProcess
from tests.integration.display_support import ScreenApp, run, start_pair, viewer
from tests.xvfb import Xvfb

FPS, KBPS = 30, 3000


@pytest.fixture
def grid(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, Xvfb]]:
    """``alpha`` shares a private Xvfb with changing content on it and lets ``beta`` view it."""
    screen = Xvfb("640x480")
    alpha = NodeProcess(tmp_path / "alpha", "alpha", display={"fps": FPS, "bitrate_kbps": KBPS})
    beta = NodeProcess(tmp_path / "beta", "beta")
    try:
        start_pair(alpha, beta, screen.display, "display")
        yield alpha, beta, screen
    finally:
        alpha.stop()
        beta.stop()
        screen.stop()


def test_a_stalled_viewer_lowers_fps_and_bitrate_and_catching_up_raises_them(
    grid: tuple[NodeProcess, NodeProcess, Xvfb],
) -> None:
    """The viewer's painter blocks, so its decode queue grows and its feedback says so; then it lets go."""
    alpha, beta, screen = grid
    app = ScreenApp(screen.display, "changing", "30")
    painting = threading.Event()  # cleared: the painter is stuck (a slow paint, a busy UI thread)
    painted: list[int] = []

    def paint(picture: Picture) -> None:
        painting.wait(15)
        painted.append(picture.seq)

    worker = DecodeWorker(paint)
    targets: list[tuple[float, int, bool]] = []  # (fps, kbps, stalled) the host announced with each frame

    def lowest() -> tuple[float, int]:
        return min(t[0] for t in targets), min(t[1] for t in targets)

    async def scenario() -> None:
        async with viewer(alpha, beta) as session:
            phase = "stalled"
            deadline = time.monotonic() + 30
            async for frame in session.frames():
                assert time.monotonic() < deadline, f"adaptation not seen in time (phase {phase}): {targets[-5:]}"
                if not frame.data:
                    continue
                worker.submit(frame)
                # What the real viewer reports in its feedback every 250 ms: frames waiting to be decoded or painted.
                session.queue_depth = worker.depth
                targets.append((frame.fps, frame.bitrate_kbps, phase == "stalled"))
                if phase == "stalled" and frame.fps < FPS * 0.75 and frame.bitrate_kbps < KBPS * 0.7:
                    phase = "caught up"  # lowered at least twice: let the painter go
                    painting.set()
                elif phase == "caught up":
                    fps, kbps = lowest()
                    if frame.fps > fps and frame.bitrate_kbps > kbps:
                        return

    try:
        run(scenario(), timeout=40)
    finally:
        painting.set()
        worker.close()
        app.stop()
    stalled = [t for t in targets if t[2]]
    assert stalled[0][:2] == (FPS, KBPS), "the session started below its configured rate"
    fps_seen = [fps for fps, _, _ in stalled]
    assert fps_seen == sorted(fps_seen, reverse=True), "the rate went up while the viewer was behind"
    assert targets[-1][0] > lowest()[0] and targets[-1][1] > lowest()[1]
    assert painted, "the painter never got a picture after it caught up"
    assert worker.error is None
