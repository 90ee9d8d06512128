"""Bitrate and frame-rate adaptation: down at once when the viewer or network falls behind, up slowly when clear."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Rate:
    """What the host aims at now."""

    fps: float
    kbps: int


@dataclass(frozen=True)
class Limits:
    max_fps: float
    min_fps: float
    max_kbps: int
    min_kbps: int


@dataclass(frozen=True)
class Adapter:
    """Pure: ``step`` gives the next rate from one observation, so the policy is testable without a network."""

    limits: Limits
    rate: Rate
    last_change: float = 0.0
    clear_since: float = 0.0
    down_every_s: float = 0.5
    up_after_s: float = 2.0

    @classmethod
    def start(cls, limits: Limits, now: float) -> Adapter:
        return cls(limits, Rate(limits.max_fps, limits.max_kbps), now, now)

    def step(self, congested: bool, now: float) -> Adapter:
        """The adapter after observing ``congested`` (the viewer's queue or the send window was full) at ``now``."""
        lim = self.limits
        if congested:
            if now - self.last_change < self.down_every_s:
                return replace(self, clear_since=now)
            rate = Rate(max(lim.min_fps, self.rate.fps * 0.75), max(lim.min_kbps, int(self.rate.kbps * 0.7)))
            return replace(self, rate=rate, last_change=now, clear_since=now)
        if now - self.clear_since >= self.up_after_s and now - self.last_change >= self.up_after_s:
            if self.rate.fps >= lim.max_fps and self.rate.kbps >= lim.max_kbps:
                return self
            rate = Rate(min(lim.max_fps, self.rate.fps * 1.2), min(lim.max_kbps, int(self.rate.kbps * 1.15) + 1))
            return replace(self, rate=rate, last_change=now)
        return self
