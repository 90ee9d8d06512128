"""Which parts of the screen changed: rectangles from two grabs, merged across a dropped grab, converted alone."""

from __future__ import annotations

import time

import numpy as np

from noizylab_desktop.services.display.capture import Grab
from noizylab_desktop.services.display.decoder import Decoder
from noizylab_desktop.services.display.encoder import Encoder
from noizylab_desktop.services.display.host import Mailbox
from noizylab_desktop.services.display.regions import MAX_RECTS, Rect, changed, union
from tests.integration.display_support import psnr

WIDTH, HEIGHT = 640, 480


def screen(shade: int = 40) -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 4), shade, np.uint8)


def test_an_unchanged_picture_has_no_changed_part() -> None:
    assert changed(screen().tobytes(), screen().tobytes(), WIDTH, HEIGHT) == ()


def test_a_picture_of_another_size_or_an_odd_one_changed_as_a_whole() -> None:
    assert changed(b"", screen().tobytes(), WIDTH, HEIGHT) is None, "the first grab"
    odd = np.zeros((3, 5, 4), np.uint8)
    assert changed(odd.tobytes(), (odd + 1).tobytes(), 5, 3) is None


def test_changed_parts_are_found_even_aligned_and_far_apart_ones_stay_apart() -> None:
    before, after = screen(), screen()
    after[101:103, 301, 0] = 255  # one odd pixel: its rectangle grows to even edges
    after[:, 500:580] = 200  # a band from top to bottom, far from it
    rects = changed(before.tobytes(), after.tobytes(), WIDTH, HEIGHT)
    assert set(rects) == {Rect(300, 100, 2, 4), Rect(500, 0, 80, HEIGHT)}


def test_every_changed_pixel_is_inside_a_rectangle() -> None:
    rng = np.random.default_rng(3)
    before = screen()
    for _ in range(20):
        after = before.copy()
        for _ in range(int(rng.integers(1, 30))):
            y, x = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH))
            after[y, x, int(rng.integers(0, 3))] ^= 0xFF
        covered = np.zeros((HEIGHT, WIDTH), bool)
        for r in changed(before.tobytes(), after.tobytes(), WIDTH, HEIGHT):
            assert r.x % 2 == r.y % 2 == r.width % 2 == r.height % 2 == 0
            covered[r.y : r.y + r.height, r.x : r.x + r.width] = True
        assert not ((before != after).any(axis=2) & ~covered).any()
        before = after


def test_a_dropped_grab_s_changes_reach_the_next_one_in_the_mailbox() -> None:
    mailbox = Mailbox()
    first, second = (Rect(0, 0, 2, 2),), (Rect(10, 10, 4, 4),)
    mailbox.put(Grab(WIDTH, HEIGHT, b"", time.time(), 0.0, rects=first))
    assert mailbox.put(Grab(WIDTH, HEIGHT, b"", time.time(), 0.0, rects=second)), "the untaken grab was dropped"
    taken = mailbox.take(0)
    assert taken is not None and taken.rects == first + second
    mailbox.put(Grab(WIDTH, HEIGHT, b"", time.time(), 0.0, rects=None))
    mailbox.put(Grab(WIDTH, HEIGHT, b"", time.time(), 0.0, rects=second))
    taken = mailbox.take(0)
    assert taken is not None and taken.rects is None, "a whole-picture grab stays whole"
    assert union(second * MAX_RECTS, second) is None, "too many parts: the whole picture"


def test_only_the_named_parts_are_converted_and_the_rest_keeps_the_last_picture() -> None:
    encoder = Encoder(["libx264"], WIDTH, HEIGHT, 30, 20000, 18)
    decoder = Decoder()

    def shown(bgra: np.ndarray, rects: tuple[Rect, ...] | None) -> np.ndarray:
        # A few encodes of the same input let the picture settle at this quality; the last one is compared.
        pictures = [i for _ in range(3) for p in encoder.encode(bgra.tobytes(), rects) for i in decoder.decode(p.data)]
        return np.asarray(pictures[-1].to_ndarray(format="rgb24"))

    try:
        first = screen()
        first[:, :, :3] = (30, 60, 90)
        assert psnr(shown(first, None), first[:, :, 2::-1]) >= 35
        second = first.copy()
        second[100:200, 100:300, :3] = (0, 0, 220)  # red: named
        second[300:400, 400:600, :3] = (0, 220, 0)  # green: not named, so the encoder must not see it
        decoded = shown(second, (Rect(100, 100, 200, 100),))
        expected = first.copy()
        expected[100:200, 100:300] = second[100:200, 100:300]
        assert psnr(decoded, expected[:, :, 2::-1]) >= 35
        assert psnr(decoded, second[:, :, 2::-1]) < 30
        assert psnr(shown(second, None), second[:, :, 2::-1]) >= 35, "a whole picture converts everything"
    finally:
        encoder.close()
