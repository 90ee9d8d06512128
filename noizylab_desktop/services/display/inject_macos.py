"""Input injection on a macOS host: Quartz event services (CGEvent) through ctypes against ApplicationServices.

The pure part turns wire events into small event descriptions (mouse with its drag type and click count, scroll,
keys by virtual key code with the modifier flags held, characters as a Unicode string); ``QuartzPoster`` makes each
one a CGEvent and posts it at ``kCGHIDEventTap``. Only that poster needs macOS (the tests pass a recorder instead).
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.capture import MonitorInfo
from noizylab_desktop.services.display.inject import map_point
from noizylab_desktop.services.display.inject_windows import text_of_keysym
from noizylab_desktop.services.display.keymaps import EVDEV, EVDEV_TO_MAC

ACCESSIBILITY_HINT = (
    "macOS does not let NOIZYLAB control this Mac: allow it in System Settings → Privacy & Security → Accessibility, "
    "then start the session again"
)
FRAMEWORK = "/System/Library/Frameworks/ApplicationServices.framework/ApplicationServices"
KCG_HID_EVENT_TAP = 0
KCG_SCROLL_EVENT_UNIT_LINE = 1
KCG_MOUSE_EVENT_CLICK_STATE = 1
KCG_EVENT_FLAGS_CHANGED = 12
MOUSE_MOVED = 5
DOUBLE_CLICK_S = 0.5

# Wire button (X11 numbering) → (CGMouseButton, down type, up type, dragged type)
BUTTONS: dict[int, tuple[int, int, int, int]] = {
    1: (0, 1, 2, 6),  # kCGMouseButtonLeft: LeftMouseDown, LeftMouseUp, LeftMouseDragged
    3: (1, 3, 4, 7),  # kCGMouseButtonRight
    2: (2, 25, 26, 27),  # kCGMouseButtonCenter: OtherMouseDown, OtherMouseUp, OtherMouseDragged
    8: (3, 25, 26, 27),  # back
    9: (4, 25, 26, 27),  # forward
}

# Modifier keys → their CGEventFlags: the device-independent mask plus the left/right device bit (NX_DEVICE*KEYMASK),
# so an app that tells left from right Option sees which one is held.
MODIFIER_FLAGS: dict[int, int] = {
    EVDEV["LEFTCTRL"]: 0x40000 | 0x0001,
    EVDEV["RIGHTCTRL"]: 0x40000 | 0x2000,
    EVDEV["LEFTSHIFT"]: 0x20000 | 0x0002,
    EVDEV["RIGHTSHIFT"]: 0x20000 | 0x0004,
    EVDEV["LEFTMETA"]: 0x100000 | 0x0008,
    EVDEV["RIGHTMETA"]: 0x100000 | 0x0010,
    EVDEV["LEFTALT"]: 0x80000 | 0x0020,
    EVDEV["RIGHTALT"]: 0x80000 | 0x0040,
}


@dataclass(frozen=True)
class MouseEvent:
    """``CGEventCreateMouseEvent(NULL, type, (x, y), button)`` with its click state and flags set."""

    type: int
    x: float
    y: float
    button: int
    clicks: int
    flags: int


@dataclass(frozen=True)
class ScrollEvent:
    """``CGEventCreateScrollWheelEvent2(NULL, kCGScrollEventUnitLine, 2, dy, dx, 0)``."""

    dy: int
    dx: int


@dataclass(frozen=True)
class KeyEvent:
    """``CGEventCreateKeyboardEvent(NULL, keycode, down)``; a modifier's is retyped as ``kCGEventFlagsChanged``."""

    keycode: int
    down: bool
    flags: int
    flags_changed: bool


@dataclass(frozen=True)
class TextEvent:
    """A keyboard event for key 0 carrying ``text`` through ``CGEventKeyboardSetUnicodeString``."""

    text: str
    down: bool


MacEvent = MouseEvent | ScrollEvent | KeyEvent | TextEvent


class CGPoint(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


class QuartzPoster:
    """Makes CGEvents and posts them at the HID level; loads ApplicationServices (macOS only)."""

    def __init__(self) -> None:
        try:
            self._cg: Any = ctypes.cdll.LoadLibrary(FRAMEWORK)
        except OSError as exc:
            raise DisplayError(f"cannot load ApplicationServices for input injection: {exc}") from exc
        cg, vp = self._cg, ctypes.c_void_p
        cg.AXIsProcessTrusted.restype = ctypes.c_bool
        cg.CGEventCreateMouseEvent.restype = vp
        cg.CGEventCreateMouseEvent.argtypes = [vp, ctypes.c_uint32, CGPoint, ctypes.c_uint32]
        cg.CGEventCreateKeyboardEvent.restype = vp
        cg.CGEventCreateKeyboardEvent.argtypes = [vp, ctypes.c_uint16, ctypes.c_bool]
        # The non-variadic form: ctypes cannot pass variadic arguments right on Apple silicon.
        cg.CGEventCreateScrollWheelEvent2.restype = vp
        cg.CGEventCreateScrollWheelEvent2.argtypes = [
            vp, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32
        ]  # fmt: skip
        cg.CGEventKeyboardSetUnicodeString.argtypes = [vp, ctypes.c_ulong, ctypes.POINTER(ctypes.c_uint16)]
        cg.CGEventSetFlags.argtypes = [vp, ctypes.c_uint64]
        cg.CGEventSetType.argtypes = [vp, ctypes.c_uint32]
        cg.CGEventSetIntegerValueField.argtypes = [vp, ctypes.c_uint32, ctypes.c_int64]
        cg.CGEventPost.argtypes = [ctypes.c_uint32, vp]
        cg.CFRelease.argtypes = [vp]

    def trusted(self) -> bool:
        """Whether the person allowed this app under Privacy & Security → Accessibility."""
        return bool(self._cg.AXIsProcessTrusted())

    def __call__(self, event: MacEvent) -> None:
        cg = self._cg
        if isinstance(event, MouseEvent):
            ref = cg.CGEventCreateMouseEvent(None, event.type, CGPoint(event.x, event.y), event.button)
            cg.CGEventSetIntegerValueField(ref, KCG_MOUSE_EVENT_CLICK_STATE, event.clicks)
            cg.CGEventSetFlags(ref, event.flags)
        elif isinstance(event, ScrollEvent):
            ref = cg.CGEventCreateScrollWheelEvent2(None, KCG_SCROLL_EVENT_UNIT_LINE, 2, event.dy, event.dx, 0)
        elif isinstance(event, KeyEvent):
            ref = cg.CGEventCreateKeyboardEvent(None, event.keycode, event.down)
            if event.flags_changed:
                cg.CGEventSetType(ref, KCG_EVENT_FLAGS_CHANGED)
            cg.CGEventSetFlags(ref, event.flags)
        else:
            ref = cg.CGEventCreateKeyboardEvent(None, 0, event.down)
            units = event.text.encode("utf-16-le")
            array = (ctypes.c_uint16 * (len(units) // 2)).from_buffer_copy(units)
            cg.CGEventKeyboardSetUnicodeString(ref, len(array), array)
            cg.CGEventSetFlags(ref, 0)  # the character as is, whatever modifiers are held
        if not ref:
            raise DisplayError("macOS could not create an input event")
        try:
            cg.CGEventPost(KCG_HID_EVENT_TAP, ref)
        finally:
            cg.CFRelease(ref)


class QuartzSink:
    """``InputSink`` for macOS; ``post`` is the OS (a recorder in the tests), ``trusted`` its Accessibility check."""

    def __init__(
        self,
        post: Callable[[MacEvent], None] | None = None,
        trusted: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if post is None:
            poster = QuartzPoster()
            post, trusted = poster, trusted or poster.trusted
        if trusted is not None and not trusted():
            raise DisplayError(ACCESSIBILITY_HINT)
        self._post = post
        self._clock = clock
        self._held_keys: set[int] = set()
        self._held_buttons: set[int] = set()
        self._last_press: tuple[int, float, float, float] | None = None  # button, x, y, when
        self._clicks = 1
        self._pos = (0, 0)  # where the pointer was put last: a release at the end goes there, not to a corner

    @property
    def flags(self) -> int:
        """The modifier flags of every modifier key held now."""
        flags = 0
        for code in self._held_keys:
            flags |= MODIFIER_FLAGS.get(code, 0)
        return flags

    def inject(self, event: dpb.InputEvent, monitor: MonitorInfo, frame_size: tuple[int, int]) -> None:
        kind = event.WhichOneof("kind")
        if kind == "move":
            x, y = self._pos = map_point(event.move.x, event.move.y, monitor, frame_size)
            held = min(self._held_buttons, default=0)
            # With a button held macOS wants dragged events, or drag and drop and selections do not follow.
            button, _, _, dragged = BUTTONS[held] if held else (0, 0, 0, MOUSE_MOVED)
            self._post(MouseEvent(dragged, x, y, button, self._clicks if held else 0, self.flags))
        elif kind == "button":
            self._button(event.button, monitor, frame_size)
        elif kind == "wheel":
            if event.wheel.dx or event.wheel.dy:
                self._post(ScrollEvent(event.wheel.dy, event.wheel.dx))
        elif kind == "key":
            self._key(event.key)

    def _button(self, event: dpb.PointerButton, monitor: MonitorInfo, frame_size: tuple[int, int]) -> None:
        found = BUTTONS.get(event.button)
        if found is None:
            return
        x, y = self._pos = map_point(event.x, event.y, monitor, frame_size)
        button, down_type, up_type, _ = found
        if event.down:
            now = self._clock()
            last = self._last_press
            # macOS apps count double clicks from the click state field, not from timing the events themselves.
            repeat = last is not None and last[0] == event.button and abs(last[1] - x) <= 4 and abs(last[2] - y) <= 4
            self._clicks = self._clicks + 1 if repeat and last is not None and now - last[3] <= DOUBLE_CLICK_S else 1
            self._last_press = (event.button, x, y, now)
            self._held_buttons.add(event.button)
        else:
            self._held_buttons.discard(event.button)
        self._post(MouseEvent(down_type if event.down else up_type, x, y, button, self._clicks, self.flags))

    def _key(self, event: dpb.Key) -> None:
        if event.by_position and event.scancode:
            keycode = EVDEV_TO_MAC.get(event.scancode)
            if keycode is None:
                return
            (self._held_keys.add if event.down else self._held_keys.discard)(event.scancode)
            modifier = event.scancode in MODIFIER_FLAGS
            self._post(KeyEvent(keycode, event.down, self.flags, flags_changed=modifier))
        elif event.down:  # a character is typed whole (press and release) on its press
            text = text_of_keysym(event.keysym)
            if text:
                self._post(TextEvent(text, True))
                self._post(TextEvent(text, False))

    def release_all(self) -> None:
        for code in sorted(self._held_keys):
            self._key(dpb.Key(down=False, scancode=code, by_position=True))
        for button in sorted(self._held_buttons):
            cg_button, _, up_type, _ = BUTTONS[button]
            self._post(MouseEvent(up_type, *self._pos, cg_button, 1, 0))
        self._held_keys.clear()
        self._held_buttons.clear()

    def close(self) -> None:
        pass
