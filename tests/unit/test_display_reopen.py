"""When a new bitrate target reopens the encoder (reopening costs a keyframe and about 90 ms at 1080p)."""

from __future__ import annotations

from noizylab_desktop.services.display.adapt import Adapter, Limits
from noizylab_desktop.services.display.host import reopens


def test_only_a_target_twice_as_far_reopens_the_encoder() -> None:
    assert not reopens(6000, 6000)
    assert not reopens(6000, 4200)  # one step down: the open cap stays
    assert reopens(6000, 2940)  # two steps down
    assert reopens(2940, 6000)
    assert not reopens(2940, 5144)


def test_congestion_reopens_after_two_steps_down_not_at_each() -> None:
    adapter = Adapter.start(Limits(60, 10, 6000, 500), 0.0)
    open_kbps, reopened = 6000, []
    for step in range(1, 7):
        adapter = adapter.step(True, step * 0.5)
        if reopens(open_kbps, adapter.rate.kbps):
            open_kbps = adapter.rate.kbps
            reopened.append(step)
    assert reopened == [2, 4, 6], reopened
