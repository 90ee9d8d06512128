"""H.264 encoding with PyAV: the encoder is chosen by opening each candidate for real, hardware first.

Low-latency settings on every encoder: no B-frames, no lookahead, a rate buffer of about one frame, and intra
refresh (a moving column of intra blocks) instead of periodic keyframes, so the bitrate never spikes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.regions import Rect

logger = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)
# Encoders known to copy a picture in before ``encode`` returns, so the frame may be changed and handed again; any
# other may keep a reference to it (a hardware encoder's input surface), and gets a new frame each time.
KEEPS_NO_FRAME = frozenset({"libx264"})
# Past this share of the picture changed, one whole conversion is cheaper than converting part by part.
PARTIAL_SHARE = 0.5


@dataclass(frozen=True)
class Encoded:
    """One encoded frame."""

    data: bytes
    keyframe: bool
    encode_ms: float  # conversion included
    convert_ms: float = 0.0


def _options(name: str, fps: int, kbps: int, crf: int) -> dict[str, str]:
    """Per-encoder low-latency options (each family names them differently)."""
    vbv = max(1, kbps // max(1, fps))  # one frame's worth of bits, in kbit
    if name == "libx264":
        params = f"crf={crf}:vbv-maxrate={kbps}:vbv-bufsize={vbv}:intra-refresh=1:keyint={fps * 4}"
        return {"preset": "ultrafast", "tune": "zerolatency", "x264-params": f"{params}:bframes=0:rc-lookahead=0"}
    if name == "h264_nvenc":
        return {"preset": "p1", "tune": "ull", "zerolatency": "1", "delay": "0", "rc": "cbr", "intra-refresh": "1"}
    if name == "h264_videotoolbox":
        return {"realtime": "1", "allow_sw": "0", "prio_speed": "1"}
    if name == "h264_qsv":
        return {"preset": "veryfast", "low_power": "1", "int_ref_type": "vertical", "look_ahead": "0"}
    if name == "h264_amf":
        return {"usage": "ultralowlatency", "quality": "speed", "intra_refresh_mb": "255"}
    if name == "h264_mf":
        return {"scenario": "display_remoting", "rate_control": "cbr"}
    return {}


def _open(name: str, width: int, height: int, fps: int, kbps: int, crf: int) -> Any:
    import av

    ctx: Any = av.CodecContext.create(name, "w")
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = "yuv420p" if name != "h264_videotoolbox" else "nv12"
    ctx.time_base = TIME_BASE
    ctx.framerate = Fraction(fps, 1)
    ctx.bit_rate = kbps * 1000
    ctx.max_b_frames = 0
    ctx.gop_size = fps * 4
    # The generic rate cap and buffer apply to every encoder; libx264 gets its own in x264-params too.
    ctx.options = {
        "maxrate": f"{kbps}k",
        "bufsize": f"{max(1, kbps // max(1, fps))}k",
        **_options(name, fps, kbps, crf),
    }
    ctx.open()
    return ctx


def probe(candidates: Sequence[str], width: int, height: int, fps: int, kbps: int, crf: int) -> tuple[str, Any]:
    """The first candidate that opens at this size, with its open context; why each one before it failed is logged."""
    failures = []
    for name in candidates:
        try:
            return name, _open(name, width, height, fps, kbps, crf)
        except Exception as exc:  # PyAV raises many kinds (UnknownCodecError, PermissionError, ArgumentError...)
            failures.append(f"{name} ({type(exc).__name__})")
            logger.info("encoder %s does not open here: %s", name, exc)
    raise DisplayError(f"no H.264 encoder opens here (tried {', '.join(failures)}): install a PyAV with libx264")


class Encoder:
    """One open encoder for one picture size; ``encode`` takes BGRA and returns the H.264 for it."""

    def __init__(self, candidates: Sequence[str], width: int, height: int, fps: int, kbps: int, crf: int) -> None:
        self.width = width
        self.height = height
        self.kbps = kbps
        self.name, self._ctx = probe(candidates, width, height, fps, kbps, crf)
        self._t0 = time.monotonic()
        self._last_pts = -1
        self._bgra: Any = None
        self._yuv: Any = None  # the last picture handed to the encoder, in its pixel format
        self._parts: dict[tuple[int, int], Any] = {}  # BGRA frames for parts, by size
        logger.info("encoding %dx%d with %s at up to %d kbps", width, height, self.name, kbps)

    def encode(self, bgra: bytes | bytearray, rects: Sequence[Rect] | None = None) -> list[Encoded]:
        """Encode one BGRA picture of this encoder's size; ``rects``: the only parts changed since the last one."""
        started = time.perf_counter()
        frame = self._convert(bgra, rects)
        converted = time.perf_counter()
        # Timestamps in milliseconds of wall time: the frame rate changes with the screen and the network.
        pts = max(self._last_pts + 1, int((time.monotonic() - self._t0) * 1000))
        self._last_pts = pts
        frame.pts = pts
        packets = self._ctx.encode(frame)
        elapsed = (time.perf_counter() - started) * 1000
        convert_ms = (converted - started) * 1000
        return [Encoded(bytes(p), bool(p.is_keyframe), elapsed, convert_ms) for p in packets]

    def _convert(self, bgra: bytes | bytearray, rects: Sequence[Rect] | None) -> Any:
        """The picture in the encoder's pixel format: only ``rects`` converted into the kept frame where it can."""
        if (
            rects is not None
            and self._yuv is not None
            and self.name in KEEPS_NO_FRAME
            and sum(r.area for r in rects) <= PARTIAL_SHARE * self.width * self.height
        ):
            for rect in rects:
                self._convert_part(bgra, rect)
            return self._yuv
        self._yuv = self._convert_whole(bgra)
        return self._yuv

    def _convert_part(self, bgra: bytes | bytearray, rect: Rect) -> None:
        """Convert one part of the picture and write it into the kept frame, plane by plane (row by row through
        memoryviews: no numpy on the display host's path, which Wine's ucrtbase cannot load; see capture.is_black)."""
        import av

        part: Any = self._parts.pop((rect.width, rect.height), None) or av.VideoFrame(rect.width, rect.height, "bgra")
        self._parts[(rect.width, rect.height)] = part  # the most recent sizes stay (a moving band keeps its size)
        while len(self._parts) > 8:
            self._parts.pop(next(iter(self._parts)))
        source = memoryview(bgra).cast("B")
        plane = part.planes[0]
        rows = memoryview(plane).cast("B")
        width, stride, left = rect.width * 4, self.width * 4, rect.x * 4
        for row in range(rect.height):
            at = (rect.y + row) * stride + left
            rows[row * plane.line_size : row * plane.line_size + width] = source[at : at + width]
        converted = part.reformat(format=self._ctx.pix_fmt)
        for index, (into, fresh) in enumerate(zip(self._yuv.planes, converted.planes, strict=True)):
            shift = 0 if index == 0 else 1  # 4:2:0: the chroma planes are half as wide and half as high
            x, y, w, h = rect.x >> shift, rect.y >> shift, rect.width >> shift, rect.height >> shift
            target, fresh_rows = memoryview(into).cast("B"), memoryview(fresh).cast("B")
            for row in range(h):
                at = (y + row) * into.line_size + x
                target[at : at + w] = fresh_rows[row * fresh.line_size : row * fresh.line_size + w]

    def _convert_whole(self, bgra: bytes | bytearray) -> Any:
        """The picture in the encoder's pixel format, converted by swscale into a new frame the encoder may keep."""
        import av

        # One BGRA frame is refilled with a memcpy (about 0.3 ms at 1080p): ``VideoFrame.from_ndarray`` takes about
        # 6 ms for the same bytes, a third of a 60 fps frame's time.
        if self._bgra is None:
            self._bgra = av.VideoFrame(self.width, self.height, "bgra")
        plane = self._bgra.planes[0]
        row = self.width * 4
        if plane.line_size == row:
            plane.update(bgra)
        else:  # rows padded for alignment (e.g. 1366 wide): copy row by row into the padded plane (no numpy here:
            # see capture.is_black)
            target = memoryview(plane).cast("B")
            source = memoryview(bgra).cast("B")
            rows = zip(
                range(0, self.height * plane.line_size, plane.line_size), range(0, len(source), row), strict=True
            )
            for into, start in rows:
                target[into : into + row] = source[start : start + row]
        return self._bgra.reformat(format=self._ctx.pix_fmt)

    def close(self) -> None:
        """Flush and drop the encoder."""
        try:
            self._ctx.encode(None)
        except Exception:  # a flush failing on the way out changes nothing for the viewer
            logger.debug("encoder flush failed", exc_info=True)
