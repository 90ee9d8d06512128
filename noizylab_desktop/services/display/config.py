"""The ``[display]`` table of the node's config, validated into ``DisplayConfig``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noizylab_desktop.core.errors import ConfigError

# Hardware first; a listed encoder may still fail to open (an H100 has no NVENC engine), so each is tried for real.
DEFAULT_ENCODERS = ("h264_nvenc", "h264_videotoolbox", "h264_mf", "h264_qsv", "h264_amf", "libx264")
ENCODERS_ENV = "NOIZYLAB_DISPLAY_ENCODERS"


@dataclass(frozen=True)
class DisplayConfig:
    """How this node shares its screen."""

    fps: int = 60
    min_fps: int = 10
    bitrate_kbps: int = 6000
    min_bitrate_kbps: int = 500
    crf: int = 21
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    # Frames still encoded after the screen stops changing, so a still picture sharpens to full quality.
    settle_frames: int = 6
    keepalive_s: float = 1.0
    black_timeout_s: float = 1.5


def _int(raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"[display] {key} must be a whole number from {low} to {high}, not {value!r}")
    return value


def parse(raw: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> DisplayConfig:
    """``DisplayConfig`` from the raw table; ``NOIZYLAB_DISPLAY_ENCODERS=a,b`` overrides the probe order."""
    known = set(DisplayConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[display] has unknown keys {', '.join(unknown)}: use {', '.join(sorted(known))}")
    encoders: Any = raw.get("encoders", DEFAULT_ENCODERS)
    if env.get(ENCODERS_ENV):
        encoders = [name.strip() for name in env[ENCODERS_ENV].split(",") if name.strip()]
    if not isinstance(encoders, list | tuple) or not encoders or not all(isinstance(e, str) for e in encoders):
        raise ConfigError("[display] encoders must be a non-empty list of encoder names, e.g. ['libx264']")
    fps = _int(raw, "fps", DisplayConfig.fps, 1, 240)
    bitrate = _int(raw, "bitrate_kbps", DisplayConfig.bitrate_kbps, 100, 200_000)
    keepalive = raw.get("keepalive_s", DisplayConfig.keepalive_s)
    if not isinstance(keepalive, int | float) or not 0.1 <= keepalive <= 30:
        raise ConfigError(f"[display] keepalive_s must be from 0.1 to 30 seconds, not {keepalive!r}")
    black = raw.get("black_timeout_s", DisplayConfig.black_timeout_s)
    if not isinstance(black, int | float) or not 0.2 <= black <= 10:
        raise ConfigError(f"[display] black_timeout_s must be from 0.2 to 10 seconds, not {black!r}")
    return DisplayConfig(
        fps=fps,
        min_fps=_int(raw, "min_fps", min(DisplayConfig.min_fps, fps), 1, fps),
        bitrate_kbps=bitrate,
        min_bitrate_kbps=_int(raw, "min_bitrate_kbps", min(DisplayConfig.min_bitrate_kbps, bitrate), 50, bitrate),
        crf=_int(raw, "crf", DisplayConfig.crf, 0, 51),
        encoders=tuple(encoders),
        settle_frames=_int(raw, "settle_frames", DisplayConfig.settle_frames, 0, 120),
        keepalive_s=float(keepalive),
        black_timeout_s=float(black),
    )
