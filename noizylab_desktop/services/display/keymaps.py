"""Key positions on the wire are Linux evdev codes; these tables turn them into Windows and macOS key codes and back.

Windows codes are set-1 scan codes with the E0 prefix as bit 0x100, the form Qt's ``nativeScanCode()`` gives on
Windows and ``SendInput`` takes (low byte as ``wScan``, bit 0x100 as ``KEYEVENTF_EXTENDEDKEY``). macOS codes are the
virtual key codes of ``Events.h`` (``kVK_*``), which ``CGEventCreateKeyboardEvent`` takes and Qt's
``nativeVirtualKey()`` gives on macOS. Each table is one-to-one, so the inverse tables are exact.
"""

from __future__ import annotations

# evdev codes (linux/input-event-codes.h) by name, for the tables below and the tests.
EVDEV: dict[str, int] = {
    "ESC": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11, "MINUS": 12,
    "EQUAL": 13, "BACKSPACE": 14, "TAB": 15, "Q": 16, "W": 17, "E": 18, "R": 19, "T": 20, "Y": 21, "U": 22, "I": 23,
    "O": 24, "P": 25, "LEFTBRACE": 26, "RIGHTBRACE": 27, "ENTER": 28, "LEFTCTRL": 29, "A": 30, "S": 31, "D": 32,
    "F": 33, "G": 34, "H": 35, "J": 36, "K": 37, "L": 38, "SEMICOLON": 39, "APOSTROPHE": 40, "GRAVE": 41,
    "LEFTSHIFT": 42, "BACKSLASH": 43, "Z": 44, "X": 45, "C": 46, "V": 47, "B": 48, "N": 49, "M": 50, "COMMA": 51,
    "DOT": 52, "SLASH": 53, "RIGHTSHIFT": 54, "KPASTERISK": 55, "LEFTALT": 56, "SPACE": 57, "CAPSLOCK": 58,
    "F1": 59, "F2": 60, "F3": 61, "F4": 62, "F5": 63, "F6": 64, "F7": 65, "F8": 66, "F9": 67, "F10": 68,
    "NUMLOCK": 69, "SCROLLLOCK": 70, "KP7": 71, "KP8": 72, "KP9": 73, "KPMINUS": 74, "KP4": 75, "KP5": 76, "KP6": 77,
    "KPPLUS": 78, "KP1": 79, "KP2": 80, "KP3": 81, "KP0": 82, "KPDOT": 83, "102ND": 86, "F11": 87, "F12": 88,
    "RO": 89, "KATAKANAHIRAGANA": 93, "HENKAN": 92, "MUHENKAN": 94, "KPENTER": 96, "RIGHTCTRL": 97, "KPSLASH": 98,
    "SYSRQ": 99, "RIGHTALT": 100, "HOME": 102, "UP": 103, "PAGEUP": 104, "LEFT": 105, "RIGHT": 106, "END": 107,
    "DOWN": 108, "PAGEDOWN": 109, "INSERT": 110, "DELETE": 111, "MUTE": 113, "VOLUMEDOWN": 114, "VOLUMEUP": 115,
    "KPEQUAL": 117, "PAUSE": 119, "KPCOMMA": 121, "YEN": 124, "LEFTMETA": 125, "RIGHTMETA": 126, "COMPOSE": 127,
    "F13": 183, "F14": 184, "F15": 185, "F16": 186, "F17": 187, "F18": 188, "F19": 189, "F20": 190, "F21": 191,
    "F22": 192, "F23": 193, "F24": 194,
}  # fmt: skip

EXTENDED = 0x100  # the E0 prefix

# Set 1 makes the first 88 evdev codes their own scan codes (evdev was laid out after it); the rest are listed.
_WINDOWS_NAMED: dict[str, int] = {
    "102ND": 0x56, "F11": 0x57, "F12": 0x58, "RO": 0x73, "KATAKANAHIRAGANA": 0x70, "HENKAN": 0x79,
    "MUHENKAN": 0x7B, "KPEQUAL": 0x59, "KPCOMMA": 0x7E, "YEN": 0x7D,
    "F13": 0x64, "F14": 0x65, "F15": 0x66, "F16": 0x67, "F17": 0x68, "F18": 0x69, "F19": 0x6A, "F20": 0x6B,
    "F21": 0x6C, "F22": 0x6D, "F23": 0x6E, "F24": 0x76,
    # Pause is E1 1D 45 on the wire, which Windows reports (and SendInput takes) as plain 0x45; NumLock then is E0 45.
    "PAUSE": 0x45, "NUMLOCK": EXTENDED | 0x45,
    "KPENTER": EXTENDED | 0x1C, "RIGHTCTRL": EXTENDED | 0x1D, "KPSLASH": EXTENDED | 0x35,
    "SYSRQ": EXTENDED | 0x37, "RIGHTALT": EXTENDED | 0x38, "HOME": EXTENDED | 0x47, "UP": EXTENDED | 0x48,
    "PAGEUP": EXTENDED | 0x49, "LEFT": EXTENDED | 0x4B, "RIGHT": EXTENDED | 0x4D, "END": EXTENDED | 0x4F,
    "DOWN": EXTENDED | 0x50, "PAGEDOWN": EXTENDED | 0x51, "INSERT": EXTENDED | 0x52, "DELETE": EXTENDED | 0x53,
    "LEFTMETA": EXTENDED | 0x5B, "RIGHTMETA": EXTENDED | 0x5C, "COMPOSE": EXTENDED | 0x5D,
    "MUTE": EXTENDED | 0x20, "VOLUMEDOWN": EXTENDED | 0x2E, "VOLUMEUP": EXTENDED | 0x30,
}  # fmt: skip

EVDEV_TO_WINDOWS: dict[int, int] = {
    **{code: code for code in EVDEV.values() if code <= 83 and code != EVDEV["NUMLOCK"]},
    **{EVDEV[name]: scan for name, scan in _WINDOWS_NAMED.items()},
}

EVDEV_TO_MAC: dict[int, int] = {
    EVDEV[name]: vk
    for name, vk in {
        "A": 0x00, "S": 0x01, "D": 0x02, "F": 0x03, "H": 0x04, "G": 0x05, "Z": 0x06, "X": 0x07, "C": 0x08,
        "V": 0x09, "102ND": 0x0A, "B": 0x0B, "Q": 0x0C, "W": 0x0D, "E": 0x0E, "R": 0x0F, "Y": 0x10, "T": 0x11,
        "1": 0x12, "2": 0x13, "3": 0x14, "4": 0x15, "6": 0x16, "5": 0x17, "EQUAL": 0x18, "9": 0x19, "7": 0x1A,
        "MINUS": 0x1B, "8": 0x1C, "0": 0x1D, "RIGHTBRACE": 0x1E, "O": 0x1F, "U": 0x20, "LEFTBRACE": 0x21, "I": 0x22,
        "P": 0x23, "ENTER": 0x24, "L": 0x25, "J": 0x26, "APOSTROPHE": 0x27, "K": 0x28, "SEMICOLON": 0x29,
        "BACKSLASH": 0x2A, "COMMA": 0x2B, "SLASH": 0x2C, "N": 0x2D, "M": 0x2E, "DOT": 0x2F, "TAB": 0x30,
        "SPACE": 0x31, "GRAVE": 0x32, "BACKSPACE": 0x33, "ESC": 0x35, "RIGHTMETA": 0x36, "LEFTMETA": 0x37,
        "LEFTSHIFT": 0x38, "CAPSLOCK": 0x39, "LEFTALT": 0x3A, "LEFTCTRL": 0x3B, "RIGHTSHIFT": 0x3C,
        "RIGHTALT": 0x3D, "RIGHTCTRL": 0x3E, "F17": 0x40, "KPDOT": 0x41, "KPASTERISK": 0x43, "KPPLUS": 0x45,
        "NUMLOCK": 0x47, "VOLUMEUP": 0x48, "VOLUMEDOWN": 0x49, "MUTE": 0x4A, "KPSLASH": 0x4B, "KPENTER": 0x4C,
        "KPMINUS": 0x4E, "F18": 0x4F, "F19": 0x50, "KPEQUAL": 0x51, "KP0": 0x52, "KP1": 0x53, "KP2": 0x54,
        "KP3": 0x55, "KP4": 0x56, "KP5": 0x57, "KP6": 0x58, "KP7": 0x59, "F20": 0x5A, "KP8": 0x5B, "KP9": 0x5C,
        "YEN": 0x5D, "RO": 0x5E, "KPCOMMA": 0x5F, "F5": 0x60, "F6": 0x61, "F7": 0x62, "F3": 0x63, "F8": 0x64,
        "F9": 0x65, "MUHENKAN": 0x66, "F11": 0x67, "HENKAN": 0x68, "F13": 0x69, "F16": 0x6A, "F14": 0x6B,
        "F10": 0x6D, "COMPOSE": 0x6E, "F12": 0x6F, "F15": 0x71, "INSERT": 0x72, "HOME": 0x73, "PAGEUP": 0x74,
        "DELETE": 0x75, "F4": 0x76, "END": 0x77, "F2": 0x78, "PAGEDOWN": 0x79, "F1": 0x7A, "LEFT": 0x7B,
        "RIGHT": 0x7C, "DOWN": 0x7D, "UP": 0x7E,
    }.items()
}  # fmt: skip
# Not on a Mac keyboard, so not sent to a macOS host: SysRq/PrintScreen, ScrollLock, Pause, F21 to F24.

WINDOWS_TO_EVDEV: dict[int, int] = {scan: code for code, scan in EVDEV_TO_WINDOWS.items()}
MAC_TO_EVDEV: dict[int, int] = {vk: code for code, vk in EVDEV_TO_MAC.items()}

X11_KEYCODE_OFFSET = 8  # X11 (and Wayland xkb) keycodes are evdev codes plus 8


def evdev_from_native(platform: str, scan_code: int, virtual_key: int) -> int:
    """The evdev code of a key the viewer's OS reported (Qt's native scan code / virtual key), 0 when unknown."""
    if platform == "win32":
        return WINDOWS_TO_EVDEV.get(scan_code & 0x1FF, 0)
    if platform == "darwin":
        # Qt gives no scan code on macOS; its native virtual key is the kVK_ code.
        return MAC_TO_EVDEV.get(virtual_key, 0)
    return max(0, scan_code - X11_KEYCODE_OFFSET)
