"""The encoder's BGRA refill: rows that fit the frame's stride (a memcpy) and padded ones (copied row by row)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from noizylab_desktop.services.display.decoder import Decoder
from noizylab_desktop.services.display.encoder import Encoder
from tests.integration.display_support import psnr


@pytest.mark.parametrize("size", [(640, 480), (1366, 768)])  # 1366 × 4 bytes is not a multiple of the alignment
def test_encoded_pictures_decode_to_the_source(size: tuple[int, int]) -> None:
    width, height = size
    rng = np.random.default_rng(5)
    encoder = Encoder(["libx264"], width, height, 30, 20000, 18)
    decoder = Decoder()
    try:
        for shade in range(3):
            bgra = np.zeros((height, width, 4), np.uint8)
            # Flat blocks of colour with a different layout each time: stale rows from the last picture would show.
            for _ in range(12):
                x, y = int(rng.integers(0, width - 64)), int(rng.integers(0, height - 64))
                bgra[y : y + 64, x : x + 64, :3] = rng.integers(0, 255, 3)
            bgra[:, :, :3] += np.uint8(40 * shade)
            pictures = [image for p in encoder.encode(bgra.tobytes()) for image in decoder.decode(p.data)]
            assert len(pictures) == 1
            decoded = pictures[0].to_ndarray(format="rgb24")
            assert decoded.shape == (height, width, 3)
            assert psnr(decoded, bgra[:, :, 2::-1]) >= 35
    finally:
        encoder.close()


def test_the_display_host_captures_checks_and_encodes_without_loading_numpy() -> None:
    """numpy's Windows builds from 2.1 on call ucrtbase's ``crealf`` as they load, which Wine lacks (the tier's node
    died on its first capture): the host's own path keeps clear of numpy, padded rows included."""
    script = (
        "import sys\n"
        "from noizylab_desktop.services.display import host\n"
        "from noizylab_desktop.services.display.capture import is_black\n"
        "from noizylab_desktop.services.display.encoder import Encoder\n"
        "assert is_black(b'\\0\\0\\0\\xff' * 64) and not is_black(b'\\0\\0\\0\\xff' * 63 + b'\\0\\1\\0\\xff')\n"
        "encoder = Encoder(['libx264'], 1366, 768, 30, 20000, 18)\n"
        "assert encoder.encode(bytes(1366 * 768 * 4)) is not None\n"
        "encoder.close()\n"
        "print('numpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
