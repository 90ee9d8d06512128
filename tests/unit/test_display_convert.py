"""The encoder's BGRA refill: rows that fit the frame's stride (a memcpy) and padded ones (copied row by row)."""

from __future__ import annotations

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
