"""The cross-platform text fallback: pyperclip, polled, with the platform's secret markers checked first.

pyperclip cannot list formats, so on Windows the registered format names are read with the Win32 API (ctypes) and
on macOS the pasteboard's types with PyObjC; where neither is possible, nothing is sent rather than a password.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from noizylab_desktop.core.errors import ClipboardError
from noizylab_desktop.services.clipboard.backend import Snapshot
from noizylab_desktop.services.clipboard.content import Clip
from noizylab_desktop.services.clipboard.markers import is_secret, markers_present


def mac_pasteboard_types() -> list[str]:
    """The general pasteboard's type names (PyObjC)."""
    from AppKit import NSPasteboard  # type: ignore[import-not-found]

    return [str(t) for t in NSPasteboard.generalPasteboard().types() or []]


def _win32() -> tuple[Any, Any]:
    """user32 and kernel32 with the clipboard calls declared: ctypes' default ``int`` result would cut a 64-bit
    handle or pointer to 32 bits (``GlobalLock`` gave a pointer that no longer pointed at the data)."""
    import ctypes
    from ctypes import wintypes

    user32 = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    user32.OpenClipboard.argtypes = [wintypes.HWND]
    user32.OpenClipboard.restype = wintypes.BOOL
    user32.CloseClipboard.restype = wintypes.BOOL
    user32.EnumClipboardFormats.argtypes = [wintypes.UINT]
    user32.EnumClipboardFormats.restype = wintypes.UINT
    user32.GetClipboardFormatNameW.argtypes = [wintypes.UINT, wintypes.LPWSTR, ctypes.c_int]
    user32.GetClipboardFormatNameW.restype = ctypes.c_int
    user32.GetClipboardData.argtypes = [wintypes.UINT]
    user32.GetClipboardData.restype = wintypes.HANDLE
    kernel32.GlobalSize.argtypes = [wintypes.HGLOBAL]
    kernel32.GlobalSize.restype = ctypes.c_size_t
    kernel32.GlobalLock.argtypes = [wintypes.HGLOBAL]
    kernel32.GlobalLock.restype = ctypes.c_void_p
    kernel32.GlobalUnlock.argtypes = [wintypes.HGLOBAL]
    kernel32.GlobalUnlock.restype = wintypes.BOOL
    return user32, kernel32


def windows_formats() -> tuple[list[str], Callable[[str], bytes]]:
    """The clipboard's registered format names and a reader for one of them (Win32 through ctypes).

    Only the password managers' markers are read (a copy's own data may be large, and is not needed here).
    """
    import ctypes

    user32, kernel32 = _win32()
    names: dict[str, int] = {}
    if not user32.OpenClipboard(None):
        raise ClipboardError("another program holds the Windows clipboard open: try again")
    try:
        fmt = user32.EnumClipboardFormats(0)
        buffer = ctypes.create_unicode_buffer(256)
        while fmt:
            if user32.GetClipboardFormatNameW(fmt, buffer, 256):
                names[buffer.value] = fmt
            fmt = user32.EnumClipboardFormats(fmt)
        values: dict[str, bytes] = {}
        for name in markers_present(names).values():
            handle = user32.GetClipboardData(names[name])
            size = kernel32.GlobalSize(handle) if handle else 0
            pointer = kernel32.GlobalLock(handle) if handle else None
            if pointer:
                values[name] = ctypes.string_at(pointer, size)
                kernel32.GlobalUnlock(handle)
    finally:
        user32.CloseClipboard()
    return list(names), lambda name: values.get(name, b"")


def platform_secret() -> bool:
    """Whether this platform's clipboard carries a password manager's marker now."""
    if sys.platform == "darwin":
        try:
            return is_secret(mac_pasteboard_types(), lambda _: b"")
        except ImportError:
            return True  # cannot tell: keep it here
    if sys.platform == "win32":
        formats, read = windows_formats()
        return is_secret(formats, read)
    return False  # X11 without a display has no clipboard markers to read; Wayland tools offer none to pyperclip


class PyperclipBackend:
    """Plain text through pyperclip; ``watch`` returns False, so the service polls."""

    name = "pyperclip"

    def __init__(self) -> None:
        try:
            import pyperclip
        except ImportError as exc:
            raise ClipboardError("pyperclip is not installed: reinstall noizylab-desktop") from exc
        self._pyperclip = pyperclip

    def watch(self, changed: Callable[[], None]) -> bool:
        return False

    def _read(self) -> Snapshot:
        if platform_secret():
            return Snapshot(secret=True)
        try:
            text = self._pyperclip.paste()
        except self._pyperclip.PyperclipException as exc:
            raise ClipboardError(f"cannot read the clipboard: {exc}") from exc
        return Snapshot(Clip(text=text or ""))

    async def read(self) -> Snapshot:
        return await asyncio.to_thread(self._read)

    async def write(self, clip: Clip) -> None:
        if clip.text:
            await asyncio.to_thread(self._pyperclip.copy, clip.text)

    def close(self) -> None:
        pass
