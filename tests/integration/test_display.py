"""Remote desktop end to end: real nodes over mTLS, the host's screen a private Xvfb, real H.264 both ways."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError, PermissionRefusedError
from noizylab_desktop.core.transport import secure_channel
from noizylab_desktop.services.display.client import ViewerSession
from noizylab_desktop.services.display.decoder import Decoder
from tests.conftest import NOIZYLAB, NodeProcess, wait_for
from tests.integration.display_screen import read_counter
from tests.integration.display_support import (
    ScreenApp,
    ask_to_close,
    grab_screen,
    psnr,
    run,
    split_into_monitors,
    start_pair,
    viewer,
)
from tests.xvfb import Xvfb

# The probe order starts with encoders that cannot open here, so every test also shows the fallback to libx264.
FORCED_ORDER = ["h264_bogus", "h264_nvenc", "libx264"]


@pytest.fixture(scope="module")
def screen() -> Iterator[Xvfb]:
    xvfb = Xvfb("640x480")
    yield xvfb
    xvfb.stop()


@pytest.fixture(scope="module")
def grid(screen: Xvfb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """``alpha`` shares the Xvfb screen; ``beta`` views it. Paired once for the module."""
    root = tmp_path_factory.mktemp("display")
    alpha = NodeProcess(root / "alpha", "alpha", display={"encoders": FORCED_ORDER})
    beta = NodeProcess(root / "beta", "beta")
    try:
        start_pair(alpha, beta, screen.display)
        wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
        yield alpha, beta
    finally:
        alpha.stop()
        beta.stop()


@pytest.fixture
def allowed(grid: tuple[NodeProcess, NodeProcess]) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """alpha lets beta view (and control) its screen for one test."""
    alpha, beta = grid
    alpha.cli("allow", "beta", "display", "control")
    yield alpha, beta
    alpha.cli("deny", "beta", "display", "control")


@pytest.fixture
def pattern(screen: Xvfb) -> Iterator[ScreenApp]:
    app = ScreenApp(screen.display, "pattern")
    yield app
    app.stop()


async def decoded_pictures(session: Any, count: int, settled: bool = False) -> list[tuple[dpb.VideoFrame, Any]]:
    """Decode frames until ``count`` pictures arrived (and, if ``settled``, the host sent a keep-alive after them).

    A keep-alive means the host had nothing new for a second: the picture has stopped changing and sharpening. A
    read is never cancelled to wait for quiet: cancelling a read cancels the whole call.
    """
    decoder = Decoder()
    pictures: list[tuple[dpb.VideoFrame, Any]] = []
    async for frame in session.frames():
        if frame.data:
            pictures += [(frame, image) for image in decoder.decode(frame.data)]
        if len(pictures) >= count and (not settled or not frame.data):
            return pictures
    raise AssertionError("the host ended the session")


def test_headless_host_refuses_a_peer_without_display_permission(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = grid
    result = beta.cli("view", "alpha", "--record", str(alpha.home / "x.mp4"), "--duration", "1", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "alpha does not allow display for this peer" in result.stderr
    assert "noizylab allow PEER display" in result.stderr
    assert not (alpha.home / "x.mp4").exists()


def test_decoded_frames_match_the_test_pattern(allowed: Any, pattern: ScreenApp, screen: Xvfb) -> None:
    alpha, beta = allowed
    source = grab_screen(screen.display)

    async def scenario() -> list[tuple[dpb.VideoFrame, Any]]:
        async with viewer(alpha, beta) as session:
            assert session.info.encoder == "libx264"
            assert (session.info.width, session.info.height) == (640, 480)
            return await decoded_pictures(session, 1, settled=True)

    pictures = run(scenario())
    last = pictures[-1][1].to_ndarray(format="rgb24")
    assert last.shape == source.shape
    assert psnr(last, source) >= 35.0


def test_record_writes_an_mp4_that_ffprobe_accepts(allowed: Any, pattern: ScreenApp, tmp_path: Path) -> None:
    alpha, beta = allowed
    out = tmp_path / "screen.mp4"
    summary = json.loads(beta.cli("view", "alpha", "--record", str(out), "--duration", "2", "--json").stdout)
    assert summary["encoder"] == "libx264"
    assert summary["frames"] >= 1
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(out)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "h264"
    assert (stream["width"], stream["height"]) == (640, 480)
    assert int(stream["nb_read_frames"]) == summary["frames"]


def test_an_unchanged_screen_sends_only_keepalives(allowed: Any, pattern: ScreenApp) -> None:
    alpha, beta = allowed

    async def scenario() -> tuple[int, int]:
        async with viewer(alpha, beta) as session:
            await decoded_pictures(session, 1, settled=True)
            data = keepalives = 0
            deadline = time.monotonic() + 2.5
            async for frame in session.frames():
                data += 1 if frame.data else 0
                keepalives += 0 if frame.data else 1
                if time.monotonic() > deadline:
                    break
            return data, keepalives

    data, keepalives = run(scenario())
    assert data == 0
    assert keepalives >= 1


def test_a_monitor_that_does_not_exist_is_a_one_line_error(allowed: Any) -> None:
    alpha, beta = allowed
    result = beta.cli("view", "alpha", "--monitor", "3", "--record", str(beta.home / "m.mp4"), "--duration", "1",
                      check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "noizylab: error: there is no monitor 3: this machine has monitors 1 to 1"


BURST = "Hello, Wörld! éß€ aa"
BY_POSITION = [30, 48, 46]  # evdev KEY_A, KEY_B, KEY_C whatever the layout


@pytest.fixture
def busy() -> Iterator[None]:
    """Two busy loops beside the test, so the host's cores are saturated while keys arrive."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def test_clicks_and_a_burst_of_typed_text_land_in_a_window_on_the_host(allowed: Any, screen: Xvfb, busy: None) -> None:
    """Every key of a burst sent as fast as the wire takes it arrives, in order, with the host's cores saturated."""
    alpha, beta = allowed
    probe = ScreenApp(screen.display, "input", "200", "150", "300", "200")
    try:

        async def scenario() -> list[str]:
            async with viewer(alpha, beta, control=True) as session:
                assert session.info.control
                for down in (True, False):
                    button = dpb.PointerButton(button=1, down=down, x=250.0, y=190.0)
                    await session.send_input(dpb.InputEvent(button=button))
                # The probe reports the click once its window has the keyboard focus; keys typed before would be lost.
                lines = [await asyncio.to_thread(probe.expect, "click", 20)]
                for ch in BURST:  # by character: the host's layout has no é, ß or €, so those go on spare keycodes
                    keysym = ord(ch) if ord(ch) < 0x100 else 0x01000000 + ord(ch)
                    await session.send_input(dpb.InputEvent(key=dpb.Key(down=True, keysym=keysym)))
                    await session.send_input(dpb.InputEvent(key=dpb.Key(down=False, keysym=keysym)))
                for code in BY_POSITION:
                    for down in (True, False):
                        key = dpb.Key(down=down, scancode=code, by_position=True)
                        await session.send_input(dpb.InputEvent(key=key))
                for _ in range(len(BURST) + len(BY_POSITION)):
                    lines.append(await asyncio.to_thread(probe.expect, "key", 20))
                return lines

        lines = run(scenario(), timeout=120)
        assert lines[0] == "click 50 40 1"
        assert [ast.literal_eval(line[4:]) for line in lines[1:]] == [*BURST, "a", "b", "c"]
        assert probe.line(0.5) is None, "a key arrived twice"
    finally:
        probe.stop()


def test_switching_monitor_changes_the_stream_and_a_click_lands_on_the_second_monitor(tmp_path: Path) -> None:
    """A host with two 640×480 monitors side by side (RandR monitors on one Xvfb screen, as mss sees them)."""
    screen = Xvfb("1280x480")
    monitors = split_into_monitors(screen.display, [(0, 0, 640, 480), (640, 0, 640, 480)])
    gamma = NodeProcess(tmp_path / "gamma", "gamma", display={"encoders": ["libx264"]})
    delta = NodeProcess(tmp_path / "delta", "delta")
    apps: list[ScreenApp] = []
    try:
        start_pair(gamma, delta, screen.display, "display", "control")
        apps.append(ScreenApp(screen.display, "pattern"))  # colour bars behind
        # The probe's window (a flat blue) sits on the second monitor only: at 100,100 of it, 300×200.
        probe = ScreenApp(screen.display, "input", "740", "100", "300", "200")
        apps.append(probe)

        async def scenario(app: ScreenApp) -> tuple[Any, Any, str]:
            async with viewer(gamma, delta, control=True) as session:
                assert [(m.index, m.left, m.width) for m in session.info.monitors] == [(1, 0, 640), (2, 640, 640)]
                assert (session.info.monitor, session.info.width, session.info.height) == (1, 640, 480)
                decoder = Decoder()
                shown: dict[int, Any] = {}  # monitor → its last picture once settled (a keep-alive came after it)
                latest = None
                async for frame in session.frames():
                    if frame.data:
                        pictures = decoder.decode(frame.data)
                        latest = pictures[-1].to_ndarray(format="rgb24") if pictures else latest
                    elif latest is not None:
                        shown.setdefault(session.info.monitor, latest)
                        if session.info.monitor == 1 and 2 not in shown:
                            await session.select_monitor(2)
                            latest = None
                        elif 2 in shown:
                            break
                for down in (True, False):  # frame pixel (150, 150) of monitor 2 is desktop (790, 150)
                    button = dpb.PointerButton(button=1, down=down, x=150.0, y=150.0)
                    await session.send_input(dpb.InputEvent(button=button))
                clicked = await asyncio.to_thread(app.expect, "click", 20)
                return shown[1], shown[2], clicked

        first, second, clicked = run(scenario(probe), timeout=90)
        blue = np.array([30, 90, 160])
        # Frame pixel (250, 200) is inside the probe's window on monitor 2, and in the colour bars on monitor 1.
        assert np.abs(first[200, 250].astype(int) - blue).max() > 40
        assert np.abs(second[200, 250].astype(int) - blue).max() < 12
        assert second.shape == (480, 640, 3)
        assert clicked == "click 50 50 1"
    finally:
        for app in apps:
            app.stop()
        gamma.stop()
        delta.stop()
        monitors.close()
        screen.stop()


def test_control_needs_its_own_permission(grid: tuple[NodeProcess, NodeProcess], pattern: ScreenApp) -> None:
    alpha, beta = grid
    alpha.cli("allow", "beta", "display")
    try:

        async def scenario() -> dpb.SessionInfo:
            async with viewer(alpha, beta, control=True) as session:
                return session.info

        info = run(scenario())
        assert not info.control
        assert "does not allow control" in info.note
    finally:
        alpha.cli("deny", "beta", "display")


def test_drawn_to_decoded_latency_is_measured_from_the_screen(allowed: Any, screen: Xvfb) -> None:
    """The host draws a frame counter; the viewer reads it from decoded pictures and times drawing to decoding."""
    alpha, beta = allowed
    app = ScreenApp(screen.display, "counter", "30")
    drawn: dict[int, float] = {}
    try:

        async def scenario() -> list[tuple[int, float]]:
            seen: list[tuple[int, float]] = []
            decoder = Decoder()
            async with viewer(alpha, beta) as session:
                async for frame in session.frames():
                    for image in decoder.decode(frame.data) if frame.data else []:
                        gray = image.to_ndarray(format="gray")
                        seen.append((read_counter(gray, image.width, image.height), time.time()))
                    if len(seen) >= 40:
                        break
            return seen

        seen = run(scenario())
        for line in app.finish():
            _, n, at = line.split()
            drawn[int(n)] = float(at)
    finally:
        app.stop()
    matched = [(n, at - drawn[n]) for n, at in seen if n in drawn]
    counters = [n for n, _ in matched]
    assert len(matched) >= 20, "the counter could not be read back from most decoded pictures"
    assert counters == sorted(counters), "decoded counters went backwards"
    assert len(set(counters)) >= 15, "the viewer saw the counter change"
    latencies = sorted(lat for _, lat in matched)
    assert all(lat > 0 for lat in latencies), "a picture decoded before it was drawn: the counter was misread"
    assert latencies[len(latencies) // 2] < 1.0
    print(f"drawn-to-decoded latency: p50 {latencies[len(latencies) // 2] * 1000:.1f} ms")


def test_an_all_black_capture_is_reported_within_two_seconds(tmp_path: Path) -> None:
    black = Xvfb("320x240", black=True)
    gamma = NodeProcess(tmp_path / "gamma", "gamma")
    delta = NodeProcess(tmp_path / "delta", "delta")
    try:
        start_pair(gamma, delta, black.display, "display")

        async def scenario() -> float:
            channel = secure_channel(delta.identity(), gamma.identity().cert_pem, gamma.grpc_address)
            async with channel:
                await asyncio.wait_for(channel.channel_ready(), 10)  # time the capture, not the TLS handshake
                started = time.monotonic()
                with pytest.raises(DisplayError, match="captures as all black"):
                    async with ViewerSession(channel, "gamma") as session:
                        async for frame in session.frames():
                            assert not frame.data, "black frames were streamed"
                return time.monotonic() - started

        assert run(scenario()) < 2.0
    finally:
        gamma.stop()
        delta.stop()
        black.stop()


def test_a_refused_viewer_gets_the_permission_error_class(grid: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = grid

    async def scenario() -> None:
        async with viewer(alpha, beta):
            pass

    with pytest.raises(PermissionRefusedError):
        run(scenario())
    assert np is not None


def test_view_options_are_checked_before_anything_connects(grid: tuple[NodeProcess, NodeProcess]) -> None:
    _, beta = grid
    cases = {
        ("view", "alpha", "--duration", "2"): "noizylab: error: --duration only applies to --record FILE.mp4",
        ("view", "alpha", "--record", "out.gif", "--duration", "1"): (
            "noizylab: error: cannot record to out.gif: name the file .mp4 (or .mkv)"
        ),
        ("view", "alpha", "--record", "x.mp4", "--duration", "0"): (
            "noizylab: error: --duration must be more than 0 seconds (and at most a day), not 0.0"
        ),
        ("view", "nobody", "--record", "x.mp4", "--duration", "1"): None,
    }
    for args, message in cases.items():
        result = beta.cli(*args, check=False)
        assert result.returncode == 1, args
        assert result.stderr.count("\n") == 1, result.stderr
        if message is not None:
            assert result.stderr.strip() == message
        else:
            assert result.stderr.startswith("noizylab: error: ") and "nobody" in result.stderr


def test_view_opens_a_window_that_ends_the_session_when_closed(allowed: Any, pattern: ScreenApp, screen: Xvfb) -> None:
    alpha, beta = allowed
    env = {**os.environ, "DISPLAY": screen.display, "QT_QPA_PLATFORM": "xcb"}
    command = [*NOIZYLAB, "--home", str(beta.home), "view", "alpha", "--view-only"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        title = "alpha — NOIZYLAB remote desktop"
        found = subprocess.run(["xdotool", "search", "--sync", "--name", title], env=env, capture_output=True,
                               text=True, timeout=30)  # fmt: skip
        window = int(found.stdout.split()[0])
        ask_to_close(screen.display, window)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
