"""``--record FILE.mp4``: the H.264 the viewer receives, muxed into MP4 as it is (no re-encoding)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError

TIME_BASE = Fraction(1, 1000)
SUFFIXES = (".mp4", ".mov", ".mkv")  # containers that take H.264 as it is


class Recorder:
    """Writes frames to an MP4 file; timestamps come from the host's capture times."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        import av

        if path.suffix.lower() not in SUFFIXES:
            raise DisplayError(f"cannot record to {path.name}: name the file .mp4 (or .mkv)")
        if not path.parent.is_dir():
            raise DisplayError(f"cannot record to {path}: the folder {path.parent} does not exist")
        self.path = path
        try:
            self._out: Any = av.open(str(path), "w")
        except OSError as exc:
            raise DisplayError(f"cannot record to {path}: {exc.strerror or exc}") from exc
        self._stream: Any = self._out.add_stream("h264", rate=60)
        self._stream.width = width
        self._stream.height = height
        self._stream.time_base = TIME_BASE
        self._first: float | None = None
        self._last_pts = -1
        self.frames = 0

    def write(self, frame: dpb.VideoFrame) -> None:
        """Mux one frame (keep-alives carry nothing and are skipped)."""
        import av

        if not frame.data:
            return
        if self._first is None:
            if not frame.keyframe:
                return  # a recording must start at a picture a player can decode on its own
            self._first = frame.captured_at
        packet = av.Packet(frame.data)
        pts = max(self._last_pts + 1, round((frame.captured_at - self._first) * 1000))
        self._last_pts = pts
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        packet.stream = self._stream
        if frame.keyframe:
            packet.is_keyframe = True
        self._out.mux(packet)
        self.frames += 1

    def close(self) -> None:
        self._out.close()
