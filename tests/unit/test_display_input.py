"""Input on every platform: the evdev ↔ Windows/macOS key tables, and what the Windows and macOS sinks hand the OS.

SendInput and CGEventPost cannot run here; the sinks take the OS call as a function, so these tests record exactly
what the real call would receive.
"""

from __future__ import annotations

import ctypes
import logging
import sys

import pytest

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display import inject_windows as win
from noizylab_desktop.services.display.capture import MonitorInfo
from noizylab_desktop.services.display.inject_macos import (
    MODIFIER_FLAGS,
    KeyEvent,
    MacEvent,
    MouseEvent,
    QuartzSink,
    ScrollEvent,
    TextEvent,
)
from noizylab_desktop.services.display.keymaps import (
    EVDEV,
    EVDEV_TO_MAC,
    EVDEV_TO_WINDOWS,
    EXTENDED,
    evdev_from_native,
)
from noizylab_desktop.services.display.sinks import open_sink

LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
DIGITS = [str(d) for d in range(10)]
PUNCTUATION = ["MINUS", "EQUAL", "LEFTBRACE", "RIGHTBRACE", "SEMICOLON", "APOSTROPHE", "GRAVE", "BACKSLASH", "COMMA",
               "DOT", "SLASH", "102ND", "SPACE", "TAB", "ENTER", "BACKSPACE", "ESC", "CAPSLOCK"]  # fmt: skip
F_KEYS = [f"F{i}" for i in range(1, 13)]
MODIFIERS = ["LEFTCTRL", "RIGHTCTRL", "LEFTSHIFT", "RIGHTSHIFT", "LEFTALT", "RIGHTALT", "LEFTMETA", "RIGHTMETA"]
NAVIGATION = ["UP", "DOWN", "LEFT", "RIGHT", "HOME", "END", "PAGEUP", "PAGEDOWN", "INSERT", "DELETE"]
KEYPAD = [f"KP{d}" for d in range(10)] + ["KPDOT", "KPENTER", "KPPLUS", "KPMINUS", "KPASTERISK", "KPSLASH", "NUMLOCK"]
FULL_KEYBOARD = LETTERS + DIGITS + PUNCTUATION + F_KEYS + MODIFIERS + NAVIGATION + KEYPAD

# The desktop of the tests: monitor 1 (1280×1024) left of the primary monitor 2 (1920×1080, at 0,0).
LEFT = MonitorInfo(1, -1280, 0, 1280, 1024)
PRIMARY = MonitorInfo(2, 0, 0, 1920, 1080)
DESK = win.VirtualDesk(-1280, 0, 3200, 1080)


@pytest.mark.parametrize("table", [EVDEV_TO_WINDOWS, EVDEV_TO_MAC], ids=["windows", "macos"])
def test_each_table_covers_the_full_keyboard_one_to_one(table: dict[int, int]) -> None:
    missing = [name for name in FULL_KEYBOARD if EVDEV[name] not in table]
    assert missing == []
    assert len(set(table.values())) == len(table), "two evdev keys map to the same native key"
    assert all(code in EVDEV.values() for code in table)


def test_windows_scan_codes_follow_set_one_with_the_extended_prefix() -> None:
    assert EVDEV_TO_WINDOWS[EVDEV["A"]] == 0x1E
    assert EVDEV_TO_WINDOWS[EVDEV["F12"]] == 0x58
    assert EVDEV_TO_WINDOWS[EVDEV["102ND"]] == 0x56
    assert EVDEV_TO_WINDOWS[EVDEV["KP7"]] == 0x47  # the keypad's 7 is Home without the E0 prefix
    assert EVDEV_TO_WINDOWS[EVDEV["HOME"]] == EXTENDED | 0x47
    extended = ["RIGHTCTRL", "RIGHTALT", "LEFTMETA", "RIGHTMETA", "KPENTER", "KPSLASH", *NAVIGATION]
    assert all(EVDEV_TO_WINDOWS[EVDEV[name]] & EXTENDED for name in extended)
    plain = ["LEFTCTRL", "LEFTALT", "LEFTSHIFT", "RIGHTSHIFT", "KPDOT", "KPPLUS", "KPMINUS", "KPASTERISK", *LETTERS]
    assert not any(EVDEV_TO_WINDOWS[EVDEV[name]] & EXTENDED for name in plain + [f"KP{d}" for d in range(10)])


def test_left_and_right_modifiers_stay_distinct_everywhere() -> None:
    for left, right in [("LEFTCTRL", "RIGHTCTRL"), ("LEFTSHIFT", "RIGHTSHIFT"), ("LEFTALT", "RIGHTALT"),
                        ("LEFTMETA", "RIGHTMETA")]:  # fmt: skip
        assert EVDEV_TO_WINDOWS[EVDEV[left]] != EVDEV_TO_WINDOWS[EVDEV[right]]
        assert EVDEV_TO_MAC[EVDEV[left]] != EVDEV_TO_MAC[EVDEV[right]]
        assert MODIFIER_FLAGS[EVDEV[left]] != MODIFIER_FLAGS[EVDEV[right]]
    assert EVDEV_TO_MAC[EVDEV["LEFTALT"]] == 0x3A and EVDEV_TO_MAC[EVDEV["RIGHTALT"]] == 0x3D  # kVK_(Right)Option


def test_a_windows_or_macos_viewer_sends_evdev_codes() -> None:
    for code, scan in EVDEV_TO_WINDOWS.items():
        assert evdev_from_native("win32", scan, 0) == code
    for code, vk in EVDEV_TO_MAC.items():
        assert evdev_from_native("darwin", 0, vk) == code  # Qt gives no scan code on macOS
    assert evdev_from_native("linux", EVDEV["A"] + 8, 0x61) == EVDEV["A"]  # X11 keycode = evdev + 8
    assert evdev_from_native("win32", 0x1FF, 0) == 0  # an unknown key is not sent by position
    assert evdev_from_native("darwin", 0, 0xFFFF) == 0


class SendRecorder:
    """Stands where ``user32.SendInput`` goes: keeps what it would receive; takes ``taken`` of each batch."""

    def __init__(self, taken: int | None = None) -> None:
        self.batches: list[list[win.INPUT]] = []
        self.taken = taken

    def __call__(self, inputs: object) -> int:
        batch = list(inputs)  # type: ignore[call-overload]
        self.batches.append(batch)
        return len(batch) if self.taken is None else self.taken

    @property
    def inputs(self) -> list[win.INPUT]:
        return [i for batch in self.batches for i in batch]


def windows_sink(sent: SendRecorder) -> win.SendInputSink:
    return win.SendInputSink(send=sent, desk=lambda: DESK)


def test_the_input_structure_has_the_layout_send_input_expects() -> None:
    assert ctypes.sizeof(win.INPUT) == (40 if ctypes.sizeof(ctypes.c_void_p) == 8 else 28)
    assert ctypes.sizeof(win.MOUSEINPUT) == (32 if ctypes.sizeof(ctypes.c_void_p) == 8 else 24)
    assert win.INPUT.u.offset == (8 if ctypes.sizeof(ctypes.c_void_p) == 8 else 4)


def test_a_click_lands_through_scaling_and_a_monitor_left_of_the_primary() -> None:
    sent = SendRecorder()
    sink = windows_sink(sent)
    # The viewer sees the primary monitor at half size: frame (480, 270) is desktop (960, 540).
    for down in (True, False):
        sink.inject(dpb.InputEvent(button=dpb.PointerButton(button=1, down=down, x=480, y=270)), PRIMARY, (960, 540))
    press, release = sent.inputs
    absolute = win.MOUSEEVENTF_MOVE | win.MOUSEEVENTF_ABSOLUTE | win.MOUSEEVENTF_VIRTUALDESK
    assert press.type == win.INPUT_MOUSE
    assert (press.mi.dx, press.mi.dy) == (45889, 32798)  # (960 + 1280) / 3199 and 540 / 1079 of 65535
    assert press.mi.dwFlags == absolute | win.MOUSEEVENTF_LEFTDOWN
    assert release.mi.dwFlags == absolute | win.MOUSEEVENTF_LEFTUP
    # The left monitor's top-left corner is the virtual desktop's, its right edge just left of the primary's.
    sink.inject(dpb.InputEvent(move=dpb.PointerMove(x=0, y=0)), LEFT, (1280, 1024))
    sink.inject(dpb.InputEvent(move=dpb.PointerMove(x=1279, y=1023)), LEFT, (1280, 1024))
    corner, edge = sent.inputs[2:]
    assert (corner.mi.dx, corner.mi.dy, corner.mi.dwFlags) == (0, 0, absolute)
    assert (edge.mi.dx, edge.mi.dy) == (round(1279 * 65535 / 3199), round(1023 * 65535 / 1079))


def test_side_buttons_and_the_wheel() -> None:
    sent = SendRecorder()
    sink = windows_sink(sent)
    sink.inject(dpb.InputEvent(button=dpb.PointerButton(button=9, down=True, x=1, y=1)), PRIMARY, (1920, 1080))
    assert (sent.inputs[0].mi.dwFlags & win.MOUSEEVENTF_XDOWN, sent.inputs[0].mi.mouseData) == (0x80, win.XBUTTON2)
    sink.inject(dpb.InputEvent(wheel=dpb.Wheel(dx=1, dy=-2)), PRIMARY, (1920, 1080))
    down, right = sent.batches[-1]
    assert (down.mi.dwFlags, ctypes.c_int32(down.mi.mouseData).value) == (win.MOUSEEVENTF_WHEEL, -240)
    assert (right.mi.dwFlags, right.mi.mouseData) == (win.MOUSEEVENTF_HWHEEL, 120)


def test_keys_by_position_use_scan_codes_and_the_extended_flag() -> None:
    sent = SendRecorder()
    sink = windows_sink(sent)
    for code, down in [(EVDEV["RIGHTCTRL"], True), (EVDEV["A"], True), (EVDEV["A"], False)]:
        sink.inject(dpb.InputEvent(key=dpb.Key(down=down, scancode=code, by_position=True)), PRIMARY, (1920, 1080))
    ctrl, a_down, a_up = sent.inputs
    extended = win.KEYEVENTF_SCANCODE | win.KEYEVENTF_EXTENDEDKEY
    assert ctrl.type == win.INPUT_KEYBOARD
    assert (ctrl.ki.wVk, ctrl.ki.wScan, ctrl.ki.dwFlags) == (0, 0x1D, extended)
    assert (a_down.ki.wScan, a_down.ki.dwFlags) == (0x1E, win.KEYEVENTF_SCANCODE)
    assert (a_up.ki.wScan, a_up.ki.dwFlags) == (0x1E, win.KEYEVENTF_SCANCODE | win.KEYEVENTF_KEYUP)
    sink.release_all()  # the viewer left with Right Ctrl held
    (up,) = sent.batches[-1]
    assert (up.ki.wScan, up.ki.dwFlags) == (0x1D, extended | win.KEYEVENTF_KEYUP)


def test_keys_by_character_are_unicode_code_units() -> None:
    sent = SendRecorder()
    sink = windows_sink(sent)
    for keysym in (0xE9, 0x01000000 + 0x1F600):  # é, and 😀 beyond the BMP: a surrogate pair
        sink.inject(dpb.InputEvent(key=dpb.Key(down=True, keysym=keysym)), PRIMARY, (1920, 1080))
        sink.inject(dpb.InputEvent(key=dpb.Key(down=False, keysym=keysym)), PRIMARY, (1920, 1080))
    fields = [(i.ki.wVk, i.ki.wScan, i.ki.dwFlags) for i in sent.inputs]
    unicode, up = win.KEYEVENTF_UNICODE, win.KEYEVENTF_UNICODE | win.KEYEVENTF_KEYUP
    assert fields == [(0, 0xE9, unicode), (0, 0xE9, up),
                      (0, 0xD83D, unicode), (0, 0xD83D, up), (0, 0xDE00, unicode), (0, 0xDE00, up)]  # fmt: skip


def test_input_windows_refuses_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sink = windows_sink(SendRecorder(taken=0))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            sink.inject(dpb.InputEvent(move=dpb.PointerMove(x=5, y=5)), PRIMARY, (1920, 1080))
    assert [r.getMessage() for r in caplog.records] == [
        "Windows refused injected input (0 of 1 taken): is an elevated window in front?"
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def mac_sink(posted: list[MacEvent], clock: Clock | None = None) -> QuartzSink:
    return QuartzSink(post=posted.append, trusted=lambda: True, clock=clock or Clock())


def test_mac_clicks_count_double_clicks_and_drags_are_dragged_events() -> None:
    posted: list[MacEvent] = []
    clock = Clock()
    sink = mac_sink(posted, clock)
    # Monitor 2 of a Mac: points left of the main display; the frame is Retina pixels (twice the points).
    monitor = MonitorInfo(2, -1440, 0, 1440, 900)
    for down in (True, False, True):
        sink.inject(dpb.InputEvent(button=dpb.PointerButton(button=1, down=down, x=200, y=100)), monitor, (2880, 1800))
        clock.now += 0.1
    sink.inject(dpb.InputEvent(move=dpb.PointerMove(x=400, y=300)), monitor, (2880, 1800))
    sink.inject(dpb.InputEvent(button=dpb.PointerButton(button=1, down=False, x=400, y=300)), monitor, (2880, 1800))
    sink.inject(dpb.InputEvent(move=dpb.PointerMove(x=402, y=300)), monitor, (2880, 1800))
    assert posted == [
        MouseEvent(1, -1340, 50, 0, 1, 0),  # LeftMouseDown at the point the frame pixel shows
        MouseEvent(2, -1340, 50, 0, 1, 0),
        MouseEvent(1, -1340, 50, 0, 2, 0),  # the second press: a double click
        MouseEvent(6, -1240, 150, 0, 2, 0),  # LeftMouseDragged while held
        MouseEvent(2, -1240, 150, 0, 2, 0),
        MouseEvent(5, -1239, 150, 0, 0, 0),  # MouseMoved
    ]
    clock.now += 1.0
    sink.inject(dpb.InputEvent(button=dpb.PointerButton(button=3, down=True, x=400, y=300)), monitor, (2880, 1800))
    assert posted[-1] == MouseEvent(3, -1240, 150, 1, 1, 0)  # RightMouseDown, a single click again


def test_mac_keys_carry_the_modifiers_held_left_or_right() -> None:
    posted: list[MacEvent] = []
    sink = mac_sink(posted)
    for code, down in [(EVDEV["RIGHTSHIFT"], True), (EVDEV["A"], True), (EVDEV["A"], False)]:
        sink.inject(dpb.InputEvent(key=dpb.Key(down=down, scancode=code, by_position=True)), PRIMARY, (1920, 1080))
    sink.inject(dpb.InputEvent(key=dpb.Key(down=True, keysym=0x01000000 + 0x20AC)), PRIMARY, (1920, 1080))  # €
    sink.inject(dpb.InputEvent(wheel=dpb.Wheel(dx=0, dy=3)), PRIMARY, (1920, 1080))
    sink.release_all()
    assert posted == [
        KeyEvent(0x3C, True, 0x20004, flags_changed=True),  # kVK_RightShift, shift + the right-shift device bit
        KeyEvent(0x00, True, 0x20004, flags_changed=False),  # kVK_ANSI_A
        KeyEvent(0x00, False, 0x20004, flags_changed=False),
        TextEvent("€", True),
        TextEvent("€", False),
        ScrollEvent(dy=3, dx=0),
        KeyEvent(0x3C, False, 0, flags_changed=True),  # the viewer left: Right Shift let go
    ]


def test_mac_without_accessibility_permission_says_where_to_allow_it() -> None:
    with pytest.raises(DisplayError) as caught:
        QuartzSink(post=lambda event: None, trusted=lambda: False)
    assert "System Settings → Privacy & Security → Accessibility" in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="checks what the other platforms' sinks say here")
def test_open_sink_picks_by_platform_and_fails_in_one_line() -> None:
    messages = {}
    for platform in ("win32", "darwin", "sunos5"):
        with pytest.raises(DisplayError) as caught:
            open_sink(platform)
        messages[platform] = caught.value.message
    assert messages["win32"].startswith("cannot load user32 for input injection")
    assert messages["darwin"].startswith("cannot load ApplicationServices for input injection")
    assert messages["sunos5"] == "input injection is not available on sunos5"
    assert all("\n" not in m for m in messages.values())
