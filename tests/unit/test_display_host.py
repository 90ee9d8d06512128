"""The host pipeline with a two-monitor screen source (Xvfb shows mss one monitor): switching monitors, frame flow."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.services.display.capture import Grab, MonitorInfo
from noizylab_desktop.services.display.decoder import Decoder
from noizylab_desktop.services.display.host import HostStream
from noizylab_desktop.services.display.settings import DisplaySettings

COLOURS = {1: (0, 0, 200), 2: (0, 200, 0)}  # BGR: monitor 1 red, monitor 2 green


class TwoMonitors:
    """Two side-by-side monitors of different sizes, each one flat colour, with a counter so frames differ."""

    def __init__(self) -> None:
        self.grabs = 0

    def monitors(self) -> list[MonitorInfo]:
        return [MonitorInfo(1, 0, 0, 320, 240), MonitorInfo(2, 320, 0, 160, 120)]

    def grab(self, monitor: MonitorInfo) -> Grab:
        self.grabs += 1
        picture = np.zeros((monitor.height, monitor.width, 4), np.uint8)
        picture[:, :, :3] = COLOURS[monitor.index]
        picture[0, 0, 0] = self.grabs % 256  # one pixel changes, so frames keep coming
        return Grab(monitor.width, monitor.height, picture.tobytes(), time.time(), 0.1)

    def close(self) -> None:
        pass


async def next_of(stream: HostStream, kind: str) -> dpb.HostMessage:
    while True:
        item = await asyncio.wait_for(stream.queue.get(), 10)
        assert not isinstance(item, BaseException), item
        if item.WhichOneof("kind") == kind:
            return item
        if item.HasField("frame"):
            stream.written()


def test_switching_monitors_sends_new_info_and_that_monitor_s_pictures() -> None:
    async def scenario() -> None:
        config = DisplaySettings(encoders=("libx264",), fps=30)
        stream = HostStream(config, 1, asyncio.get_running_loop(), source_factory=TwoMonitors)
        stream.start()
        try:
            info = (await next_of(stream, "info")).info
            assert (info.monitor, info.width, info.height, info.encoder) == (1, 320, 240, "libx264")
            assert [(m.index, m.left, m.width) for m in info.monitors] == [(1, 0, 320), (2, 320, 160)]
            stream.select_monitor(2)
            info = (await next_of(stream, "info")).info
            assert (info.monitor, info.width, info.height) == (2, 160, 120)
            frame = (await next_of(stream, "frame")).frame
            assert frame.keyframe and (frame.width, frame.height) == (160, 120)
            rgb = Decoder().decode(frame.data)[0].to_ndarray(format="rgb24")
            assert abs(int(rgb[60, 80, 1]) - 200) < 8 and int(rgb[60, 80, 0]) < 12  # green: monitor 2
        finally:
            stream.stop()
            await asyncio.to_thread(stream.join)

    asyncio.run(scenario())


def test_a_monitor_switch_to_one_that_does_not_exist_ends_the_stream_with_the_reason() -> None:
    async def scenario() -> BaseException:
        stream = HostStream(
            DisplaySettings(encoders=("libx264",)), 1, asyncio.get_running_loop(), source_factory=TwoMonitors
        )
        stream.start()
        try:
            await next_of(stream, "info")
            stream.select_monitor(5)
            while True:
                item = await asyncio.wait_for(stream.queue.get(), 10)
                if isinstance(item, BaseException):
                    return item
                if item.HasField("frame"):
                    stream.written()
        finally:
            stream.stop()
            await asyncio.to_thread(stream.join)

    error = asyncio.run(scenario())
    assert str(error) == "there is no monitor 5: this machine has monitors 1 to 2"
