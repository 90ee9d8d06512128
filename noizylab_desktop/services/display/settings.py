"""The ``[display]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting

# Hardware first; a listed encoder may still fail to open (an H100 has no NVENC engine), so each is tried for real.
DEFAULT_ENCODERS = ("h264_nvenc", "h264_videotoolbox", "h264_mf", "h264_qsv", "h264_amf", "libx264")
ENCODERS_ENV = "NOIZYLAB_DISPLAY_ENCODERS"  # "a,b" overrides the table's probe order


@section("display")
@dataclass(frozen=True)
class DisplaySettings:
    """How this node shares its screen."""

    fps: int = setting(60, low=1, high=240)
    # The floors default to 10 fps and 500 kbps, or to the ceiling when that is lower.
    min_fps: int = setting(10, low=1, high="fps")
    bitrate_kbps: int = setting(6000, low=100, high=200_000)
    min_bitrate_kbps: int = setting(500, low=50, high="bitrate_kbps")
    crf: int = setting(21, low=0, high=51)
    encoders: tuple[str, ...] = setting(
        DEFAULT_ENCODERS,
        non_empty=True,
        expect="a non-empty list of encoder names, e.g. ['libx264']",
        env=ENCODERS_ENV,
    )
    # Frames still encoded after the screen stops changing, so a still picture sharpens to full quality.
    settle_frames: int = setting(6, low=0, high=120)
    keepalive_s: float = setting(1.0, low=0.1, high=30, unit="seconds")
    black_timeout_s: float = setting(1.5, low=0.2, high=10, unit="seconds")
    # How long a viewer whose host went away keeps trying to reconnect before it closes with the reason.
    reconnect_s: float = setting(60.0, low=1, high=3600, unit="seconds")
