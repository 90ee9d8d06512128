"""The display host's two byte jobs without numpy, beside the numpy versions they replaced (the anchors).

The host stays free of numpy (numpy 2.1+ for Windows calls ucrtbase's ``crealf`` as it loads, which Wine lacks), so
``capture.is_black`` slices bytes and the encoder copies padded rows through memoryviews. This prints, per job, the
median of ``--repeat`` runs for ours and for the numpy anchor run in the same process, and the ratio.

Run: ``.venv/bin/python bench/display_nonumpy.py`` (a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np

from noizylab_desktop.services.display.capture import is_black
from noizylab_desktop.services.display.encoder import Encoder


def numpy_is_black(bgra: bytes | bytearray) -> bool:
    colour = np.frombuffer(bgra, np.uint8).reshape(-1, 4)[:, :3]
    return not colour[::61].any() and not colour.any()


class NumpyEncoder(Encoder):
    """The encoder with the numpy refill of padded rows it had before."""

    def _convert_whole(self, bgra: bytes | bytearray) -> Any:
        if self._bgra is None:
            self._bgra = av.VideoFrame(self.width, self.height, "bgra")
        plane = self._bgra.planes[0]
        row = self.width * 4
        rows = np.frombuffer(plane, np.uint8).reshape(self.height, plane.line_size)
        rows[:, :row] = np.frombuffer(bgra, np.uint8).reshape(self.height, row)
        return self._bgra.reformat(format=self._ctx.pix_fmt)


def median_ms(job: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        job()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    width, height = 1920, 1080
    black = bytearray(b"\0\0\0\xff" * (width * height))
    screen = bytearray(np.random.default_rng(1).integers(0, 255, width * height * 4, np.uint8).tobytes())
    rows_w, rows_h = 1366, 768  # 1366 x 4 bytes is padded in the frame
    ours_encoder = Encoder(["libx264"], rows_w, rows_h, 30, 20000, 18)
    numpy_encoder = NumpyEncoder(["libx264"], rows_w, rows_h, 30, 20000, 18)
    source = bytes(np.random.default_rng(2).integers(0, 255, rows_w * rows_h * 4, np.uint8).tobytes())

    def ours_rows() -> None:
        ours_encoder._convert_whole(source)

    def numpy_rows() -> None:
        numpy_encoder._convert_whole(source)

    jobs = [
        ("is_black 1080p, black (full check)", lambda: is_black(black), lambda: numpy_is_black(black)),
        ("is_black 1080p, a screen (sparse)", lambda: is_black(screen), lambda: numpy_is_black(screen)),
        ("BGRA refill + swscale 1366x768 (padded)", ours_rows, numpy_rows),
    ]
    print(f"{'job':42} {'ours ms':>9} {'numpy ms':>9} {'ratio':>7}")
    for name, ours, anchor in jobs:
        a, b = median_ms(ours, args.repeat), median_ms(anchor, args.repeat)
        print(f"{name:42} {a:9.3f} {b:9.3f} {a / b:6.2f}×")


if __name__ == "__main__":
    main()
