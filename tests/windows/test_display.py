"""Remote desktop from a Windows host: the Windows node captures its screen with mss (GDI; under Wine, drawn through
X on the tier's Xvfb), encodes it to H.264 and streams it over mTLS to a Linux node, which records it
(``noizylab view --record``); on Linux ffprobe reads the file and PyAV decodes it, and the picture shows the window a
Windows program drew.

The Windows node never loads numpy: numpy's Windows builds from 2.1 on call ucrtbase's ``crealf`` as they load,
which Wine 10 lacks, and the node died on its first capture (tests/unit/test_display_convert.py keeps the host's path
clear of it). What Wine cannot show, and real Windows can: the GPU encoders (NVENC, AMF, Quick Sync, Media
Foundation's hardware ones) and DXGI capture; Wine's GDI reads the X server's picture. The viewer's click is injected
with ``SendInput`` (``SendInputSink``) and reaches the Windows program's window, as on Windows.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import mss
import psutil
import pytest

from tests.conftest import NodeProcess, wait_for
from tests.slowness import scaled
from tests.windows.conftest import LinuxNode, pair

# A window on the 1280×800 screen (scripts/windows-tier.sh's Xvfb), in a colour nothing else on it has.
WINDOW = (320, 200, 640, 400)
COLOUR = (220, 40, 150)
INSIDE = (WINDOW[0] + WINDOW[2] // 2, WINDOW[1] + WINDOW[3] // 2)
OUTSIDE = (WINDOW[0] // 2, WINDOW[1] // 2)


def screen_colour(point: tuple[int, int]) -> tuple[int, int, int]:
    """The colour at ``point`` read through GDI, as the node's capture reads it."""
    with mss.MSS() as sct:
        shot = sct.grab({"left": point[0], "top": point[1], "width": 1, "height": 1})
        red, green, blue = shot.pixel(0, 0)
        return red, green, blue


def screen_size() -> tuple[int, int]:
    """The Windows screen's size as GDI reports it (Wine takes it from the X screen it draws on)."""
    with mss.MSS() as sct:
        monitor = sct.monitors[1]
        return int(monitor["width"]), int(monitor["height"])


def near(a: list[int] | tuple[int, ...], b: tuple[int, int, int], tolerance: int = 16) -> bool:
    """Within ``tolerance`` in each channel: H.264's 4:2:0 colour is close to the source, not equal."""
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.fixture
def coloured_window() -> Iterator[subprocess.Popen[str]]:
    """``colour_window.py`` showing ``COLOUR`` at ``WINDOW``, read back through GDI before the test goes on."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("colour_window.py")), *map(str, WINDOW), bytes(COLOUR).hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        wait_for(lambda: near(screen_colour(INSIDE), COLOUR, 0), what="the window's colour on the Windows screen")
        yield process
    finally:
        process.kill()
        process.wait(scaled(30))
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def test_a_linux_viewer_records_the_windows_screen_and_sees_the_window_drawn_there(
    make_node: Callable[..., NodeProcess],
    make_linux_node: Callable[..., LinuxNode],
    coloured_window: subprocess.Popen[str],
) -> None:
    assert not near(screen_colour(OUTSIDE), COLOUR, 60)  # the screen around the window is something else
    windows = make_node("omen").start()
    linux = make_linux_node("penguin").start()
    pair(windows, linux)
    windows.cli("allow", "penguin", "display")
    recording = f"{linux.linux_home}/omen.mp4"
    summary = json.loads(linux.cli("view", "omen", "--record", recording, "--duration", "3", "--json").stdout)
    assert summary["peer"] == "omen" and summary["frames"] >= 1
    # Under Wine no hardware encoder opens and Media Foundation's finds no GStreamer converter: libx264 it is (a
    # difference of Wine from Windows, where h264_mf or a GPU's encoder comes first).
    assert summary["encoder"] == "libx264"
    assert (summary["width"], summary["height"]) == screen_size() == (1280, 800)
    facts = linux.agent.call("video", path=recording, points=[INSIDE, OUTSIDE])
    stream = facts["stream"]
    assert stream["codec_name"] == "h264" and (stream["width"], stream["height"]) == screen_size()
    assert int(stream["nb_read_frames"]) == summary["frames"] == facts["pictures"]
    inside, outside = facts["colours"]
    assert near(inside, COLOUR), f"the window's centre decoded as {inside}, drawn as {COLOUR}"
    assert not near(outside, COLOUR, 60)
    # The Windows node is still up after its capture and encode (it died loading numpy before).
    assert psutil.Process(windows.pid).is_running() and windows.status()["name"] == "omen"


def test_a_click_from_the_linux_viewer_lands_in_the_window_on_windows_through_sendinput(
    make_node: Callable[..., NodeProcess],
    make_linux_node: Callable[..., LinuxNode],
    coloured_window: subprocess.Popen[str],
) -> None:
    windows = make_node("omen").start()
    linux = make_linux_node("penguin").start()
    pair(windows, linux)
    windows.cli("allow", "penguin", "display", "control")
    clicks: queue.Queue[str] = queue.Queue()
    assert coloured_window.stdout is not None
    threading.Thread(target=lambda: [clicks.put(line.strip()) for line in coloured_window.stdout], daemon=True).start()
    # Frame pixel (400, 300) is desktop (400, 300): the window's own (80, 100).
    linux.agent.call("click", home=linux.linux_home, peer="omen", x=400, y=300)
    assert clicks.get(timeout=scaled(20)) == "click 80 100"
