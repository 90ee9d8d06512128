"""Positional reads and writes on raw file descriptors, on every OS the sync engine runs on.

POSIX has ``os.pread`` and ``os.pwrite``; Windows has neither (the Windows tier found sync failing there with an
AttributeError), so there they are ``ReadFile``/``WriteFile`` with the offset in an ``OVERLAPPED``: positional as on
POSIX, safe beside other threads using the same descriptor. ``BINARY`` goes into every ``os.open`` here: Windows
opens descriptors in text mode without it, which turns ``\\n`` into ``\\r\\n`` on write and stops a read at Ctrl-Z.
"""

from __future__ import annotations

import os
import sys

BINARY: int = getattr(os, "O_BINARY", 0)

if sys.platform == "win32":
    import ctypes
    import msvcrt
    from ctypes import wintypes

    _ERROR_HANDLE_EOF = 38

    class _Overlapped(ctypes.Structure):
        _fields_ = [
            ("Internal", ctypes.c_void_p),
            ("InternalHigh", ctypes.c_void_p),
            ("Offset", wintypes.DWORD),
            ("OffsetHigh", wintypes.DWORD),
            ("hEvent", wintypes.HANDLE),
        ]

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

    def _at(offset: int) -> _Overlapped:
        return _Overlapped(Offset=offset & 0xFFFFFFFF, OffsetHigh=offset >> 32)

    def pread(fd: int, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes of ``fd`` from ``offset`` (fewer at the end of the file)."""
        buffer = ctypes.create_string_buffer(size)
        done = wintypes.DWORD()
        handle = msvcrt.get_osfhandle(fd)
        if not _kernel32.ReadFile(handle, buffer, size, ctypes.byref(done), ctypes.byref(_at(offset))):
            error = ctypes.get_last_error()
            if error == _ERROR_HANDLE_EOF:
                return b""
            raise ctypes.WinError(error)
        return buffer.raw[: done.value]

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        """Write ``data`` into ``fd`` at ``offset``; the bytes written."""
        chunk = bytes(data)
        done = wintypes.DWORD()
        handle = msvcrt.get_osfhandle(fd)
        if not _kernel32.WriteFile(handle, chunk, len(chunk), ctypes.byref(done), ctypes.byref(_at(offset))):
            raise ctypes.WinError(ctypes.get_last_error())
        return done.value

else:

    def pread(fd: int, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes of ``fd`` from ``offset`` (fewer at the end of the file)."""
        return os.pread(fd, size, offset)

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        """Write ``data`` into ``fd`` at ``offset``; the bytes written."""
        return os.pwrite(fd, data, offset)
