"""The display feature's pure parts: config, encoder probing, rate adaptation, clock offset, point mapping, recorder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import ConfigError, DisplayError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.display.adapt import Adapter, Limits
from noizylab_desktop.services.display.capture import MonitorInfo, is_black, pick
from noizylab_desktop.services.display.client import Clock
from noizylab_desktop.services.display.decoder import Decoder
from noizylab_desktop.services.display.encoder import Encoder, probe
from noizylab_desktop.services.display.inject import map_point
from noizylab_desktop.services.display.recorder import Recorder
from noizylab_desktop.services.display.settings import DEFAULT_ENCODERS, DisplaySettings


def test_config_defaults_and_one_line_errors() -> None:
    config = parse_section(DisplaySettings, {})
    assert config.encoders == DEFAULT_ENCODERS and config.fps == 60
    assert parse_section(DisplaySettings, {"fps": 30, "encoders": ["libx264"]}).encoders == ("libx264",)
    with pytest.raises(ConfigError, match=r"display\.fps must be a whole number from 1 to 240, not 0"):
        parse_section(DisplaySettings, {"fps": 0})
    with pytest.raises(ConfigError, match="unknown setting display.colour"):
        parse_section(DisplaySettings, {"colour": "red"})
    with pytest.raises(ConfigError, match="encoders must be a non-empty list"):
        parse_section(DisplaySettings, {"encoders": []})


def test_the_environment_can_force_the_probe_order() -> None:
    assert parse_section(DisplaySettings, {}, env={"NOIZYLAB_DISPLAY_ENCODERS": "h264_bogus, libx264"}).encoders == (
        "h264_bogus",
        "libx264",
    )


def test_probe_skips_encoders_that_do_not_open_and_falls_back_to_libx264() -> None:
    name, _ = probe(["h264_bogus", "h264_videotoolbox", "libx264"], 320, 240, 30, 1000, 23)
    assert name == "libx264"


def test_probe_names_every_failure_when_nothing_opens() -> None:
    with pytest.raises(DisplayError, match=r"no H.264 encoder opens here \(tried h264_bogus \(UnknownCodecError\)"):
        probe(["h264_bogus"], 320, 240, 30, 1000, 23)


def test_encoded_frames_round_trip_without_b_frames_or_delay() -> None:
    encoder = Encoder(["libx264"], 320, 240, 30, 2000, 20)
    decoder = Decoder()
    picture = np.zeros((240, 320, 4), np.uint8)
    for i in range(5):
        picture[:, :, 1] = 40 * i
        packets = encoder.encode(picture.tobytes())
        assert len(packets) == 1, "each picture must come out at once (zerolatency, no B-frames)"
        assert packets[0].keyframe == (i == 0)
        frames = decoder.decode(packets[0].data)
        assert len(frames) == 1, "the decoder must not hold pictures back"
        assert abs(int(frames[0].to_ndarray(format="rgb24")[120, 160, 1]) - 40 * i) <= 3
    encoder.close()


def test_adapter_steps_down_at_once_and_up_slowly() -> None:
    adapter = Adapter.start(Limits(60, 10, 6000, 500), now=0.0)
    down = adapter.step(True, now=1.0)
    assert (down.rate.fps, down.rate.kbps) == (45, 4200)
    assert down.step(True, now=1.1).rate == down.rate  # at most one step down per half second
    assert down.step(False, now=2.0).rate == down.rate  # not yet clear for long enough
    up = down.step(False, now=3.1)
    assert up.rate.fps > down.rate.fps and up.rate.kbps > down.rate.kbps
    floor = adapter
    for t in range(1, 40):
        floor = floor.step(True, now=float(t))
    assert (floor.rate.fps, floor.rate.kbps) == (10, 500)


def test_clock_offset_uses_the_echo_with_the_least_round_trip() -> None:
    clock = Clock()
    # host is 5 s ahead; first echo had 100 ms of one-way queueing on the way back, second 1 ms each way
    clock.add(dpb.ClockEcho(viewer_sent_at=100.0, host_received_at=105.001, host_sent_at=105.001), 100.102)
    clock.add(dpb.ClockEcho(viewer_sent_at=200.0, host_received_at=205.001, host_sent_at=205.002), 200.003)
    assert clock.offset_s == pytest.approx(5.0, abs=1e-6)
    assert clock.rtt_s == pytest.approx(0.002, abs=1e-6)


def test_pointer_positions_map_through_scaling_and_monitor_offsets() -> None:
    second = MonitorInfo(2, left=1920, top=0, width=2560, height=1440)
    assert map_point(640, 360, second, (1280, 720)) == (1920 + 1280, 720)
    assert map_point(-5, 9999, second, (1280, 720)) == (1920, 1439)


def test_monitor_choice_is_checked() -> None:
    monitors = [MonitorInfo(1, 0, 0, 800, 600)]
    assert pick(monitors, 0) is monitors[0]
    with pytest.raises(DisplayError, match="there is no monitor 2: this machine has monitors 1 to 1"):
        pick(monitors, 2)


def test_black_means_every_pixel_black_whatever_the_alpha() -> None:
    black = bytearray(b"\x00\x00\x00\xff" * 1000)
    assert is_black(black)
    black[4 * 777 + 1] = 1
    assert not is_black(black)
    varied = bytearray(b"\x00\x00\x00\xff" * 1000)
    varied[4 * 500 + 3] = 0  # alpha differs from the first pixel's: still black
    assert is_black(varied)
    varied[4 * 999 + 2] = 9  # the last pixel's red
    assert not is_black(varied)


def test_recording_refuses_a_file_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(DisplayError, match="name the file .mp4"):
        Recorder(tmp_path / "screen.gif", 320, 240)
    with pytest.raises(DisplayError, match="does not exist"):
        Recorder(tmp_path / "missing" / "screen.mp4", 320, 240)


@pytest.mark.gpu
def test_the_probe_picks_nvenc_where_the_gpu_has_an_encoder_and_libx264_where_it_has_none() -> None:
    if not shutil.which("nvidia-smi"):
        pytest.skip("no NVIDIA GPU on this machine")
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        try:
            has_nvenc = pynvml.nvmlDeviceGetEncoderCapacity(handle, pynvml.NVML_ENCODER_QUERY_H264) > 0
        except pynvml.NVMLError:
            has_nvenc = False  # data-centre GPUs such as the H100 have no NVENC engine
    finally:
        pynvml.nvmlShutdown()
    name, _ = probe(DEFAULT_ENCODERS, 1920, 1080, 60, 6000, 21)
    assert name == ("h264_nvenc" if has_nvenc else "libx264")
