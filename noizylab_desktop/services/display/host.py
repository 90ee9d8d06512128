"""The host's pipeline for one session: a capture thread and an encode thread, handing frames to the loop.

Latency comes from queues, so there are almost none: the capture thread puts each new picture into a one-slot
mailbox (the latest picture wins; one the encoder had no time for is dropped), and the encoder may have at most
``WINDOW`` frames handed to gRPC but not yet written. When that window is full the network is behind: the encoder
waits, newer pictures replace older ones, and the adapter lowers the rate. Unchanged pictures are not encoded at all
(after a few frames that let a still picture sharpen); the writer sends a tiny keep-alive instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.adapt import Adapter, Limits
from noizylab_desktop.services.display.capture import Grab, MonitorInfo, MssSource, ScreenSource, is_black, pick
from noizylab_desktop.services.display.changes import ChangeWatch, watch_for
from noizylab_desktop.services.display.encoder import Encoder
from noizylab_desktop.services.display.regions import changed, union
from noizylab_desktop.services.display.settings import DisplaySettings

logger = logging.getLogger(__name__)

WINDOW = 2
IDLE_GRAB_S = 0.25
BLACK_HINT = (
    "the screen captures as all black: allow screen recording for NOIZYLAB (macOS: System Settings → Privacy & "
    "Security → Screen Recording; Wayland: accept the screen-sharing portal), then view again"
)


@dataclass(frozen=True)
class Stats:
    """What the host has done so far in this session."""

    captured: int
    encoded: int
    dropped: int
    bytes_sent: int
    fps: float
    kbps: int


def reopens(open_kbps: int, target_kbps: int) -> bool:
    """Whether a new bitrate target is far enough from the open encoder's cap (2× either way) to reopen it."""
    return max(open_kbps, target_kbps) >= 2 * min(open_kbps, target_kbps)


class Mailbox:
    """One slot: ``put`` replaces what is there (returns True if it dropped an untaken item)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Grab | None = None

    def put(self, item: Grab) -> bool:
        with self._cond:
            dropped = self._item is not None
            if self._item is not None:
                # The encoder never saw the dropped picture: what changed in it must still be converted.
                item = replace(item, rects=union(self._item.rects, item.rects))
            self._item = item
            self._cond.notify()
            return dropped

    def take(self, timeout: float) -> Grab | None:
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


Item = dpb.HostMessage | BaseException


class HostStream:
    """Captures monitor ``monitor`` and encodes it until ``stop``; messages arrive on ``queue`` (on the loop)."""

    def __init__(
        self,
        config: DisplaySettings,
        monitor: int,
        loop: asyncio.AbstractEventLoop,
        max_fps: int = 0,
        source_factory: Callable[[], ScreenSource] = MssSource,
    ) -> None:
        self.config = config
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.monitors: list[MonitorInfo] = []
        self.monitor: MonitorInfo | None = None
        self.encoder_name = ""
        fps = float(min(max_fps, config.fps) if max_fps > 0 else config.fps)
        limits = Limits(fps, min(config.min_fps, fps), config.bitrate_kbps, config.min_bitrate_kbps)
        self._adapter = Adapter.start(limits, time.monotonic())
        self._loop = loop
        self._wanted_monitor = monitor
        self._source_factory = source_factory
        self._mailbox = Mailbox()
        self._window = threading.Semaphore(WINDOW)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._watch: ChangeWatch | None = None
        self._captured = self._encoded = self._dropped = self._bytes = 0
        self._seq = 0
        self._threads = [
            threading.Thread(target=self._guard(self._capture_loop), name="display-capture", daemon=True),
            threading.Thread(target=self._guard(self._encode_loop), name="display-encode", daemon=True),
        ]

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads (returns at once; they end within a frame)."""
        self._stop.set()
        self._window.release(WINDOW)
        with self._lock:
            if self._watch is not None:
                self._watch.wake()

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def select_monitor(self, index: int) -> None:
        """Switch to monitor ``index`` from the next frame (a bad index ends the session with a one-line error)."""
        with self._lock:
            self._wanted_monitor = index

    def written(self) -> None:
        """gRPC took one frame: the encoder may hand over another."""
        self._window.release()

    def observe(self, congested: bool) -> None:
        """Viewer feedback or the send window says whether we are behind."""
        with self._lock:
            self._adapter = self._adapter.step(congested, time.monotonic())

    def stats(self) -> Stats:
        rate = self._adapter.rate
        return Stats(self._captured, self._encoded, self._dropped, self._bytes, rate.fps, rate.kbps)

    # ------------------------------------------------------------------ threads

    def _emit(self, item: Item) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                if not self._stop.is_set():
                    logger.info("display session ends: %s", exc, exc_info=not isinstance(exc, DisplayError))
                    self._emit(exc)
                self._stop.set()

        return run

    def _capture_loop(self) -> None:
        source = self._source_factory()
        watch = None
        try:
            watch = watch_for(source)
            with self._lock:
                self._watch = watch
            self._capture_with(source, watch)
        finally:
            if watch is not None:
                with self._lock:
                    self._watch = None
                watch.close()
            source.close()

    def _capture_with(self, source: ScreenSource, watch: ChangeWatch | None) -> None:
        self.monitors = source.monitors()
        current = -1
        previous: bytes | bytearray = b""
        unchanged = 0
        black_until: float | None = time.monotonic() + self.config.black_timeout_s
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                wanted, fps = self._wanted_monitor, self._adapter.rate.fps
            if wanted != current:
                self.monitor = pick(self.monitors, wanted)
                current, previous, unchanged = wanted, b"", 0
            assert self.monitor is not None
            grabbed = time.monotonic()
            grab = source.grab(self.monitor)
            self._captured += 1
            if black_until is not None:
                if not is_black(grab.bgra):
                    black_until = None
                elif time.monotonic() > black_until:
                    raise DisplayError(BLACK_HINT)
                else:
                    # Nothing is sent while the capture is all black: the viewer gets the reason, not black frames.
                    next_at = self._pace(next_at, fps)
                    continue
            # Equal pictures cost a memcmp (about 0.3 ms for 1080p); different ones are compared two pixels at a
            # time for the parts that changed, which the encoder then converts alone.
            compared = time.perf_counter()
            rects = changed(previous, grab.bgra, grab.width, grab.height)
            unchanged = unchanged + 1 if rects == () else 0
            previous = grab.bgra
            grab = replace(grab, compare_ms=(time.perf_counter() - compared) * 1000, rects=rects)
            if unchanged <= self.config.settle_frames and self._mailbox.put(grab):
                self._dropped += 1
            if watch is None:
                next_at = self._pace(next_at, fps)
            else:
                self._await_change(watch, grabbed, fps, unchanged > self.config.settle_frames)

    def _await_change(self, watch: ChangeWatch, grabbed: float, fps: float, settled: bool) -> None:
        """Wait until the screen changes (or a still picture's next settle frame is due), keeping the rate cap."""
        # The cap is 0.9 of a frame apart: content drawn at the capture rate (or a little faster, like a 16 ms timer
        # against 60 fps) is then grabbed as each change comes, instead of drifting against a hard 16.7 ms spacing
        # and waiting up to a frame after all.
        self._stop.wait(max(0.0, grabbed + 0.9 / fps - time.monotonic()))
        # A settled picture is grabbed again every IDLE_GRAB_S anyway: a monitor switch and a change the watch did
        # not report (it should not happen) still get through; ``stop`` wakes the watch.
        until = grabbed + (IDLE_GRAB_S if settled else 1.0 / fps)
        watch.wait(max(0.0, until - time.monotonic()))

    def _pace(self, next_at: float, fps: float) -> float:
        """Wait for the next capture time; returns the one after."""
        next_at += 1.0 / fps
        now = time.monotonic()
        if next_at < now:  # behind (a slow grab): start the schedule again from now instead of bursting
            next_at = now
        self._stop.wait(next_at - now)
        return next_at

    def _encode_loop(self) -> None:
        encoder: Encoder | None = None
        informed = 0  # the monitor the viewer was last told about
        candidates = self.config.encoders
        try:
            while not self._stop.is_set():
                grab = self._mailbox.take(0.2)
                if grab is None:
                    continue
                taken_at = time.time()
                rate = self._adapter.rate
                # libx264 cannot change its rate cap once open, and reopening costs about 90 ms at 1080p (and a
                # keyframe): only a new size or a target at least 2× away from the open cap reopens it.
                if (
                    encoder is None
                    or (encoder.width, encoder.height) != (grab.width, grab.height)
                    or reopens(encoder.kbps, rate.kbps)
                ):
                    if encoder is not None:
                        encoder.close()
                    encoder = Encoder(candidates, grab.width, grab.height, int(rate.fps), rate.kbps, self.config.crf)
                    self.encoder_name = encoder.name
                    # Reopening (new rate, new monitor) starts from the encoder that opened, not the failed ones.
                    candidates = self.config.encoders[self.config.encoders.index(encoder.name) :]
                    self._emit(dpb.HostMessage(info=self._info(grab)))
                elif grab.monitor != informed:
                    # Another monitor of the same size keeps the encoder, but the viewer must learn which it sees.
                    self._emit(dpb.HostMessage(info=self._info(grab)))
                informed = grab.monitor
                for packet in encoder.encode(grab.bgra, grab.rects):
                    waited = time.monotonic()
                    while not self._window.acquire(timeout=0.2):
                        if self._stop.is_set():
                            return
                    if time.monotonic() - waited > 1.0 / rate.fps:
                        self.observe(True)  # gRPC could not take frames as fast as we made them
                    self._seq += 1
                    self._encoded += 1
                    self._bytes += len(packet.data)
                    frame = dpb.VideoFrame(
                        seq=self._seq,
                        captured_at=grab.captured_at,
                        capture_ms=grab.capture_ms,
                        encode_ms=packet.encode_ms,
                        keyframe=packet.keyframe,
                        data=packet.data,
                        width=grab.width,
                        height=grab.height,
                        bitrate_kbps=rate.kbps,
                        fps=rate.fps,
                        compare_ms=grab.compare_ms,
                        queued_ms=max(0.0, (taken_at - grab.captured_at) * 1000 - grab.capture_ms),
                        convert_ms=packet.convert_ms,
                        handed_at=time.time(),
                    )
                    self._emit(dpb.HostMessage(frame=frame))
        finally:
            if encoder is not None:
                encoder.close()

    def _info(self, grab: Grab) -> dpb.SessionInfo:
        assert self.monitor is not None
        return dpb.SessionInfo(
            encoder=self.encoder_name,
            keepalive_s=self.config.keepalive_s,
            width=grab.width,
            height=grab.height,
            monitor=grab.monitor or self.monitor.index,  # the grab's: the capture thread may have switched again
            monitors=[
                dpb.Monitor(index=m.index, left=m.left, top=m.top, width=m.width, height=m.height)
                for m in self.monitors
            ],
        )
