"""Input injection on the host behind ``InputSink``: X11 through XTEST (python-xlib) here, Windows and macOS beside.

Pointer positions arrive in pixels of the frame the viewer saw and are mapped onto the captured monitor (its offset
in the desktop and any difference between frame and monitor size). Keys arrive by position (evdev scan code, so
shortcuts and games keep their place on any layout) or by character (a keysym, typed whatever the host's layout:
a keysym the layout lacks is put on a spare keycode for the moment).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Protocol

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.capture import MonitorInfo

logger = logging.getLogger(__name__)

EVDEV_TO_X11 = 8  # X11 keycodes are Linux evdev codes plus 8
SHIFT_L = 0xFFE1
ISO_LEVEL3_SHIFT = 0xFE03


class InputSink(Protocol):
    """Where a session's input goes."""

    def inject(self, event: dpb.InputEvent, monitor: MonitorInfo, frame_size: tuple[int, int]) -> None:
        """Apply one event."""

    def release_all(self) -> None:
        """Let go of every key and button this session still holds (the viewer left)."""

    def close(self) -> None: ...


def map_point(x: float, y: float, monitor: MonitorInfo, frame_size: tuple[int, int]) -> tuple[int, int]:
    """Frame pixels → desktop pixels, clamped to the monitor."""
    fw, fh = frame_size
    dx = monitor.left + x * monitor.width / max(1, fw)
    dy = monitor.top + y * monitor.height / max(1, fh)
    return (
        int(min(max(dx, monitor.left), monitor.left + monitor.width - 1)),
        int(min(max(dy, monitor.top), monitor.top + monitor.height - 1)),
    )


class XTestSink:
    """XTEST on the host's X display; opened lazily by ``open_sink`` when a session may control."""

    def __init__(self, display_name: str | None = None) -> None:
        from Xlib import X, display, error
        from Xlib.ext import xtest

        self._X = X
        self._xtest = xtest
        try:
            self._display: Any = display.Display(display_name)
        except (error.DisplayError, error.DisplayConnectionError) as exc:
            raise DisplayError(f"cannot open the X display for input: {exc}") from exc
        if not self._display.has_extension("XTEST"):
            self._display.close()
            raise DisplayError("this X server has no XTEST extension, so input cannot be injected")
        self._held_keys: set[int] = set()
        self._held_buttons: set[int] = set()
        self._free: list[int] | None = None  # keycodes with no keysym, not used yet
        self._spares: OrderedDict[int, int] = OrderedDict()  # keysym → spare keycode, least recently used first

    def inject(self, event: dpb.InputEvent, monitor: MonitorInfo, frame_size: tuple[int, int]) -> None:
        X, fake = self._X, self._xtest.fake_input
        kind = event.WhichOneof("kind")
        if kind == "move":
            x, y = map_point(event.move.x, event.move.y, monitor, frame_size)
            fake(self._display, X.MotionNotify, x=x, y=y)
        elif kind == "button":
            x, y = map_point(event.button.x, event.button.y, monitor, frame_size)
            fake(self._display, X.MotionNotify, x=x, y=y)
            button = event.button.button
            if not 1 <= button <= 9:
                return
            fake(self._display, X.ButtonPress if event.button.down else X.ButtonRelease, button)
            (self._held_buttons.add if event.button.down else self._held_buttons.discard)(button)
        elif kind == "wheel":
            self._wheel(event.wheel.dx, event.wheel.dy)
        elif kind == "key":
            self._key(event.key)
        self._display.sync()

    def _wheel(self, dx: int, dy: int) -> None:
        X, fake = self._X, self._xtest.fake_input
        for button, count in ((4 if dy > 0 else 5, abs(dy)), (7 if dx > 0 else 6, abs(dx))):
            for _ in range(min(count, 50)):
                fake(self._display, X.ButtonPress, button)
                fake(self._display, X.ButtonRelease, button)

    def _key(self, key: dpb.Key) -> None:
        X, fake = self._X, self._xtest.fake_input
        if key.by_position and key.scancode:
            keycode = key.scancode + EVDEV_TO_X11
            fake(self._display, X.KeyPress if key.down else X.KeyRelease, keycode)
            (self._held_keys.add if key.down else self._held_keys.discard)(keycode)
            return
        if not key.keysym:
            return
        if not key.down:
            return  # a character is typed whole (press and release) on its press
        self._type_keysym(key.keysym)

    def _type_keysym(self, keysym: int) -> None:
        X, fake = self._X, self._xtest.fake_input
        found = self._find(keysym)
        if found is None:
            keycode = self._remap_spare(keysym)
            found = (keycode, 0)
        keycode, level = found
        modifiers = {1: [SHIFT_L], 2: [ISO_LEVEL3_SHIFT], 3: [SHIFT_L, ISO_LEVEL3_SHIFT]}.get(level, [])
        mod_codes = [self._display.keysym_to_keycode(m) for m in modifiers]
        for code in mod_codes:
            fake(self._display, X.KeyPress, code)
        fake(self._display, X.KeyPress, keycode)
        fake(self._display, X.KeyRelease, keycode)
        for code in reversed(mod_codes):
            fake(self._display, X.KeyRelease, code)

    def _find(self, keysym: int) -> tuple[int, int] | None:
        # Index 0/1: plain/shifted, 4/5: AltGr plain/shifted in the core keyboard mapping. Spare keycodes are ours:
        # python-xlib's cached map of them may be stale, so only ``_spares`` says what they hold.
        for keycode, index in self._display.keysym_to_keycodes(keysym):
            level = {0: 0, 1: 1, 4: 2, 5: 3}.get(index)
            if keycode in self._spares.values() or (self._free is not None and keycode in self._free):
                continue
            if level is not None and (level < 2 or self._display.keysym_to_keycode(ISO_LEVEL3_SHIFT)):
                return keycode, level
        return None

    def _remap_spare(self, keysym: int) -> int:
        """A keycode that types ``keysym``: one it already holds, else the least recently used spare one.

        Each character gets its own spare keycode, and one is reused only after every other spare was: a client maps
        keycodes to keysyms when it reads the event, with the map it fetched on the last MappingNotify, so remapping
        a keycode while earlier presses of it are still queued in the client types the new character instead (how a
        burst like ``éß`` came out as ``ßß`` under load).
        """
        if keysym in self._spares:
            self._spares.move_to_end(keysym)
            return self._spares[keysym]
        if self._free is None:
            first = self._display.display.info.min_keycode
            count = self._display.display.info.max_keycode - first + 1
            mapping = self._display.get_keyboard_mapping(first, count)
            self._free = [first + i for i, syms in enumerate(mapping) if not any(syms)]
        if self._free:
            keycode = self._free.pop()
        elif self._spares:
            _, keycode = self._spares.popitem(last=False)
        else:
            raise DisplayError("the host's keyboard map has no free keycode to type this character")
        self._display.change_keyboard_mapping(keycode, [(keysym,) * 4])
        self._display.sync()
        self._spares[keysym] = keycode
        return keycode

    def release_all(self) -> None:
        X, fake = self._X, self._xtest.fake_input
        for keycode in self._held_keys:
            fake(self._display, X.KeyRelease, keycode)
        for button in self._held_buttons:
            fake(self._display, X.ButtonRelease, button)
        self._held_keys.clear()
        self._held_buttons.clear()
        self._display.sync()

    def close(self) -> None:
        """Give the spare keycodes back empty, so the host's keyboard map is as it was."""
        try:
            for keycode in self._spares.values():
                self._display.change_keyboard_mapping(keycode, [(0,) * 4])
            self._display.sync()
        finally:
            self._display.close()
