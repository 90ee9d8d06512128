"""The X11 change watch: DAMAGE reports drawing once per change, and the host grabs a change of a settled screen."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.services.display import host
from noizylab_desktop.services.display.capture import MssSource
from noizylab_desktop.services.display.changes import X11Damage, watch_for
from noizylab_desktop.services.display.decoder import Decoder
from noizylab_desktop.services.display.host import HostStream
from noizylab_desktop.services.display.settings import DisplaySettings
from tests.conftest import wait_for
from tests.xvfb import Xvfb


@pytest.fixture(scope="module")
def screen() -> Iterator[Xvfb]:
    from Xlib import display as xdisplay

    xvfb = Xvfb("320x240")
    # Xvfb resets when its last client leaves, and a client connecting meanwhile is refused: one stays connected.
    keeper = xdisplay.Display(xvfb.display)
    yield xvfb
    keeper.close()
    xvfb.stop()


class Painter:
    """Draws filled rectangles straight onto the root window, as any client's drawing reaches the screen."""

    def __init__(self, display: str) -> None:
        from Xlib import display as xdisplay

        self.conn: Any = xdisplay.Display(display)
        self.root = self.conn.screen().root

    def fill(self, x: int, y: int, size: int, pixel: int) -> None:
        gc = self.root.create_gc(foreground=pixel)
        self.root.fill_rectangle(gc, x, y, size, size)
        gc.free()
        self.conn.sync()

    def close(self) -> None:
        self.conn.close()


def test_damage_reports_each_change_once(screen: Xvfb) -> None:
    watch = X11Damage(screen.display)
    painter = Painter(screen.display)
    try:
        watch.wait(0)  # whatever was reported before the test
        painter.fill(10, 10, 40, 0xFFFFFF)
        assert wait_for(lambda: watch.wait(0.2), timeout=20, what="a damage report for the rectangle")
        assert not watch.wait(0), "a change was reported twice"
        painter.fill(60, 10, 40, 0x00FF00)
        assert wait_for(lambda: watch.wait(0.2), timeout=20, what="a report for the second change (re-armed)")
    finally:
        painter.close()
        watch.close()


def test_a_watch_is_made_only_for_a_real_x11_capture(screen: Xvfb, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", screen.display)
    source = MssSource()
    try:
        watch = watch_for(source)
        assert isinstance(watch, X11Damage)
        watch.close()
    finally:
        source.close()
    assert watch_for(object()) is None  # type: ignore[arg-type]


def test_the_host_grabs_a_change_of_a_settled_screen(screen: Xvfb, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a still picture has settled the host waits for a report; a new rectangle must still reach the viewer."""
    monkeypatch.setenv("DISPLAY", screen.display)
    # No grab on a timer within the test's deadline: only the watch's report can bring the change (and ``stop``
    # must wake the watch for the test to end).
    monkeypatch.setattr(host, "IDLE_GRAB_S", 60.0)
    painter = Painter(screen.display)
    painter.fill(0, 0, 320, 0x000000)
    painter.fill(0, 0, 8, 0x404040)  # not all black, so the black-capture check lets frames through

    async def scenario() -> None:
        stream = HostStream(DisplaySettings(encoders=("libx264",), settle_frames=1), 1, asyncio.get_running_loop())
        decoder = Decoder()
        stream.start()
        try:
            # The first picture and one settle frame; after that the screen is settled and only a change is sent.
            for _ in range(2):
                await next_frame(stream, decoder)
            await asyncio.to_thread(painter.fill, 100, 100, 60, 0xFFFFFF)
            while True:
                pictures = await next_frame(stream, decoder)
                if any(p[130, 130].min() > 200 for p in pictures):
                    return
        finally:
            stream.stop()
            await asyncio.to_thread(stream.join)
            assert not any(t.is_alive() for t in stream._threads), "stop did not wake the capture thread"

    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        painter.close()


async def next_frame(stream: HostStream, decoder: Decoder) -> list[np.ndarray[Any, Any]]:
    """The pictures the stream's next frame decodes to (info messages are skipped)."""
    while True:
        item = await stream.queue.get()
        assert not isinstance(item, BaseException), item
        if isinstance(item, dpb.HostMessage) and item.HasField("frame"):
            stream.written()
            return [image.to_ndarray(format="rgb24") for image in decoder.decode(item.frame.data)]
