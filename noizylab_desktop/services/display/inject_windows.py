"""Input injection on a Windows host: ``SendInput`` through ctypes.

The pure part builds the ``INPUT`` structures (absolute virtual-desktop pointer positions, wheel, keys by scan code
with the extended flag, characters as UTF-16 code units); sending them is one function, ``user32.SendInput`` on
Windows, which is the only part that needs Windows (the tests pass a recorder in its place).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.capture import MonitorInfo
from noizylab_desktop.services.display.inject import map_point
from noizylab_desktop.services.display.keymaps import EVDEV_TO_WINDOWS, EXTENDED

logger = logging.getLogger(__name__)

INPUT_MOUSE = 0
INPUT_KEYBOARD = 1
MOUSEEVENTF_MOVE = 0x0001
MOUSEEVENTF_LEFTDOWN = 0x0002
MOUSEEVENTF_LEFTUP = 0x0004
MOUSEEVENTF_RIGHTDOWN = 0x0008
MOUSEEVENTF_RIGHTUP = 0x0010
MOUSEEVENTF_MIDDLEDOWN = 0x0020
MOUSEEVENTF_MIDDLEUP = 0x0040
MOUSEEVENTF_XDOWN = 0x0080
MOUSEEVENTF_XUP = 0x0100
MOUSEEVENTF_WHEEL = 0x0800
MOUSEEVENTF_HWHEEL = 0x1000
MOUSEEVENTF_VIRTUALDESK = 0x4000
MOUSEEVENTF_ABSOLUTE = 0x8000
KEYEVENTF_EXTENDEDKEY = 0x0001
KEYEVENTF_KEYUP = 0x0002
KEYEVENTF_UNICODE = 0x0004
KEYEVENTF_SCANCODE = 0x0008
WHEEL_DELTA = 120
XBUTTON1, XBUTTON2 = 1, 2
# GetSystemMetrics indices of the virtual desktop (every monitor's bounding box)
SM_XVIRTUALSCREEN, SM_YVIRTUALSCREEN, SM_CXVIRTUALSCREEN, SM_CYVIRTUALSCREEN = 76, 77, 78, 79

# Wire button (X11 numbering) → (down flag, up flag, mouseData)
BUTTONS: dict[int, tuple[int, int, int]] = {
    1: (MOUSEEVENTF_LEFTDOWN, MOUSEEVENTF_LEFTUP, 0),
    2: (MOUSEEVENTF_MIDDLEDOWN, MOUSEEVENTF_MIDDLEUP, 0),
    3: (MOUSEEVENTF_RIGHTDOWN, MOUSEEVENTF_RIGHTUP, 0),
    8: (MOUSEEVENTF_XDOWN, MOUSEEVENTF_XUP, XBUTTON1),
    9: (MOUSEEVENTF_XDOWN, MOUSEEVENTF_XUP, XBUTTON2),
}


class MOUSEINPUT(ctypes.Structure):
    _fields_ = [
        ("dx", ctypes.c_int32),  # LONG is 32 bits on Windows, 64 on Linux
        ("dy", ctypes.c_int32),
        ("mouseData", ctypes.c_uint32),
        ("dwFlags", ctypes.c_uint32),
        ("time", ctypes.c_uint32),
        ("dwExtraInfo", ctypes.c_size_t),
    ]


class KEYBDINPUT(ctypes.Structure):
    _fields_ = [
        ("wVk", ctypes.c_uint16),
        ("wScan", ctypes.c_uint16),
        ("dwFlags", ctypes.c_uint32),
        ("time", ctypes.c_uint32),
        ("dwExtraInfo", ctypes.c_size_t),
    ]


class HARDWAREINPUT(ctypes.Structure):
    _fields_ = [("uMsg", ctypes.c_uint32), ("wParamL", ctypes.c_uint16), ("wParamH", ctypes.c_uint16)]


class _INPUTUNION(ctypes.Union):
    _fields_ = [("mi", MOUSEINPUT), ("ki", KEYBDINPUT), ("hi", HARDWAREINPUT)]


class INPUT(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("type", ctypes.c_uint32), ("u", _INPUTUNION)]


@dataclass(frozen=True)
class VirtualDesk:
    """The bounding box of every monitor, in the same pixels as mss's monitors (left/top may be negative)."""

    left: int
    top: int
    width: int
    height: int

    def normalise(self, x: int, y: int) -> tuple[int, int]:
        """Desktop pixel → SendInput's 0..65535 absolute coordinates over the virtual desktop."""
        nx = round((x - self.left) * 65535 / max(1, self.width - 1))
        ny = round((y - self.top) * 65535 / max(1, self.height - 1))
        return min(max(nx, 0), 65535), min(max(ny, 0), 65535)


Send = Callable[[Sequence[INPUT]], int]


def mouse(dx: int, dy: int, flags: int, data: int = 0) -> INPUT:
    """One mouse ``INPUT`` (``data`` may be negative for the wheel: Windows reads it as a signed DWORD)."""
    return INPUT(type=INPUT_MOUSE, mi=MOUSEINPUT(dx=dx, dy=dy, mouseData=data & 0xFFFFFFFF, dwFlags=flags))


def key(scan: int, flags: int, vk: int = 0) -> INPUT:
    """One keyboard ``INPUT``."""
    return INPUT(type=INPUT_KEYBOARD, ki=KEYBDINPUT(wVk=vk, wScan=scan, dwFlags=flags))


def key_by_position(evdev: int, down: bool) -> INPUT | None:
    """The scan-code ``INPUT`` for an evdev key, or None for a key Windows has no scan code for."""
    scan = EVDEV_TO_WINDOWS.get(evdev)
    if scan is None:
        return None
    flags = KEYEVENTF_SCANCODE | (KEYEVENTF_EXTENDEDKEY if scan & EXTENDED else 0) | (0 if down else KEYEVENTF_KEYUP)
    return key(scan & 0xFF, flags)


def keys_for_text(text: str) -> list[INPUT]:
    """Press and release of each UTF-16 code unit of ``text`` (a surrogate pair is two units, as Windows wants)."""
    units = text.encode("utf-16-le")
    out: list[INPUT] = []
    for i in range(0, len(units), 2):
        unit = int.from_bytes(units[i : i + 2], "little")
        out += [key(unit, KEYEVENTF_UNICODE), key(unit, KEYEVENTF_UNICODE | KEYEVENTF_KEYUP)]
    return out


def text_of_keysym(keysym: int) -> str:
    """The character an X11 keysym from the wire stands for ("" for one that is not a character)."""
    if 0x20 <= keysym < 0x100:
        return chr(keysym)
    if keysym & 0xFF000000 == 0x01000000:
        return chr(keysym & 0x00FFFFFF)
    return ""


def system_send(inputs: Sequence[INPUT]) -> int:
    """``user32.SendInput``: how many of ``inputs`` Windows took."""
    array = (INPUT * len(inputs))(*inputs)
    return int(ctypes.windll.user32.SendInput(len(inputs), array, ctypes.sizeof(INPUT)))  # type: ignore[attr-defined]


def system_desk() -> VirtualDesk:
    metrics = ctypes.windll.user32.GetSystemMetrics  # type: ignore[attr-defined]
    return VirtualDesk(
        metrics(SM_XVIRTUALSCREEN), metrics(SM_YVIRTUALSCREEN), metrics(SM_CXVIRTUALSCREEN), metrics(SM_CYVIRTUALSCREEN)
    )


class SendInputSink:
    """``InputSink`` for Windows; ``send`` and ``desk`` are the OS (a recorder and a fixed desk in the tests)."""

    def __init__(self, send: Send | None = None, desk: Callable[[], VirtualDesk] | None = None) -> None:
        if send is None or desk is None:
            try:
                ctypes.windll.user32  # type: ignore[attr-defined]  # noqa: B018 (fails early off Windows)
            except (AttributeError, OSError) as exc:
                raise DisplayError(f"cannot load user32 for input injection: {exc}") from exc
        self._send = send or system_send
        self._desk = desk or system_desk
        self._held_keys: set[int] = set()
        self._held_buttons: set[int] = set()
        self._refused = False

    def inject(self, event: dpb.InputEvent, monitor: MonitorInfo, frame_size: tuple[int, int]) -> None:
        kind = event.WhichOneof("kind")
        if kind == "move":
            self._post([self._move(event.move.x, event.move.y, monitor, frame_size)])
        elif kind == "button":
            flags = BUTTONS.get(event.button.button)
            move = self._move(event.button.x, event.button.y, monitor, frame_size)
            if flags is None:
                self._post([move])
                return
            down, up, data = flags
            # One INPUT moves there and presses, so nothing can come between the two.
            self._post([mouse(move.mi.dx, move.mi.dy, move.mi.dwFlags | (down if event.button.down else up), data)])
            (self._held_buttons.add if event.button.down else self._held_buttons.discard)(event.button.button)
        elif kind == "wheel":
            self._post(wheel(event.wheel.dx, event.wheel.dy))
        elif kind == "key":
            self._key(event.key)

    def _move(self, x: float, y: float, monitor: MonitorInfo, frame_size: tuple[int, int]) -> INPUT:
        nx, ny = self._desk().normalise(*map_point(x, y, monitor, frame_size))
        return mouse(nx, ny, MOUSEEVENTF_MOVE | absolute())

    def _key(self, event: dpb.Key) -> None:
        if event.by_position and event.scancode:
            pressed = key_by_position(event.scancode, event.down)
            if pressed is None:
                logger.debug("no Windows scan code for evdev key %d", event.scancode)
                return
            self._post([pressed])
            (self._held_keys.add if event.down else self._held_keys.discard)(event.scancode)
        elif event.down:  # a character is typed whole (press and release) on its press
            text = text_of_keysym(event.keysym)
            if text:
                self._post(keys_for_text(text))

    def _post(self, inputs: Sequence[INPUT]) -> None:
        taken = self._send(inputs)
        if taken != len(inputs) and not self._refused:
            # UIPI: Windows drops input meant for a window of an app that runs with higher rights than this one.
            self._refused = True
            logger.warning("Windows refused injected input (%d of %d taken): is an elevated window in front?",
                           taken, len(inputs))  # fmt: skip

    def release_all(self) -> None:
        ups = [key_by_position(code, False) for code in sorted(self._held_keys)]
        inputs = [up for up in ups if up is not None]
        for button in sorted(self._held_buttons):
            _, up, data = BUTTONS[button]
            inputs.append(mouse(0, 0, up, data))
        if inputs:
            self._post(inputs)
        self._held_keys.clear()
        self._held_buttons.clear()

    def close(self) -> None:
        pass


def absolute() -> int:
    """Positions are absolute over the whole virtual desktop, not the primary monitor."""
    return MOUSEEVENTF_ABSOLUTE | MOUSEEVENTF_VIRTUALDESK


def wheel(dx: int, dy: int) -> list[INPUT]:
    """Wheel notches: up and right are positive, as on the wire (X11 buttons 4 and 7)."""
    out = []
    if dy:
        out.append(mouse(0, 0, MOUSEEVENTF_WHEEL, dy * WHEEL_DELTA))
    if dx:
        out.append(mouse(0, 0, MOUSEEVENTF_HWHEEL, dx * WHEEL_DELTA))
    return out
