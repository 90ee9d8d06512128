"""H.264 decoding for the viewer: PyAV with low delay and slice threads (frame threads would add frames of delay).

``DecodeWorker`` decodes every packet in order on its own thread (a P-frame needs the frames before it) and hands
only the newest picture on: a painter that falls behind skips pictures, never lags behind them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from noizylab_desktop._proto import noizylab_display_pb2 as dpb


@dataclass(frozen=True)
class Picture:
    """One decoded frame as RGB rows (``rgb`` is a numpy array, height × width × 3)."""

    seq: int
    rgb: Any
    width: int
    height: int
    captured_at: float  # host clock
    capture_ms: float
    encode_ms: float
    sent_at: float  # host clock
    received_at: float  # viewer clock
    decoded_at: float  # viewer clock
    decode_ms: float
    size: int


class Decoder:
    """One H.264 decoder."""

    def __init__(self) -> None:
        import av

        self._ctx = av.CodecContext.create("h264", "r")
        self._ctx.thread_type = "SLICE"
        self._ctx.options = {"flags": "low_delay"}

    def decode(self, data: bytes) -> list[Any]:
        """The frames ``data`` completes (usually one)."""
        import av

        return list(self._ctx.decode(av.Packet(data)))


class DecodeWorker:
    """Decodes on a thread; ``on_picture`` is called on that thread with each newest picture."""

    def __init__(self, on_picture: Callable[[Picture], None], pixel_format: str = "rgb24") -> None:
        self._on_picture = on_picture
        self._format = pixel_format
        self._queue: queue.SimpleQueue[tuple[dpb.VideoFrame, float] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="display-decode", daemon=True)
        self.error: BaseException | None = None
        self.decoded = 0
        self._handing = threading.Lock()
        self._closed = False
        self._thread.start()

    def submit(self, frame: dpb.VideoFrame) -> None:
        """Queue one received frame (keep-alives are ignored)."""
        if frame.data:
            self._queue.put((frame, time.time()))

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Stop decoding (frames still queued are dropped); ``on_picture`` is not called after this returns."""
        with self._handing:
            self._closed = True
        self._queue.put(None)
        self._thread.join(5)

    def _hand(self, picture: Picture) -> None:
        # Never after ``close``: the callback reaches a widget that may be deleted by then (or, should the join time
        # out, be deleted while this thread still runs).
        with self._handing:
            if not self._closed:
                self._on_picture(picture)

    def _run(self) -> None:
        decoder = Decoder()
        try:
            while (item := self._queue.get()) is not None and not self._closed:
                frame, received_at = item
                started = time.perf_counter()
                images = decoder.decode(frame.data)
                for image in images:
                    self.decoded += 1
                    # Pictures that queued up behind this one are newer: skip converting this one for the painter.
                    if self._queue.qsize() == 0 or self.decoded % 10 == 0:
                        rgb = image.to_ndarray(format=self._format)
                        decode_ms = (time.perf_counter() - started) * 1000
                        self._hand(
                            Picture(
                                frame.seq,
                                rgb,
                                image.width,
                                image.height,
                                frame.captured_at,
                                frame.capture_ms,
                                frame.encode_ms,
                                frame.sent_at,
                                received_at,
                                time.time(),
                                decode_ms,
                                len(frame.data),
                            )
                        )
        except BaseException as exc:
            self.error = exc
