"""Positional reads and writes on raw file descriptors, on every OS the sync engine runs on.

POSIX has ``os.pread`` and ``os.pwrite``; Windows has neither (the Windows tier found sync failing there with an
AttributeError), so there they are ``ReadFile``/``WriteFile`` with the offset in an ``OVERLAPPED``: positional as on
POSIX, safe beside other threads using the same descriptor. ``BINARY`` goes into every ``os.open`` here: Windows
opens descriptors in text mode without it, which turns ``\\n`` into ``\\r\\n`` on write and stops a read at Ctrl-Z.

``held_open(path)``: whether another program holds the file open without letting it be renamed or deleted (Windows'
share modes; Office and many editors do this). Nothing on POSIX stops a rename that way.
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
    _kernel32.CreateFileW.restype = wintypes.HANDLE
    _kernel32.CreateFileW.argtypes = [
        wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD, wintypes.DWORD,
        wintypes.HANDLE,
    ]  # fmt: skip
    _DELETE = 0x00010000
    _SHARE_ALL = 0x1 | 0x2 | 0x4  # FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
    _OPEN_EXISTING = 3
    _FILE_FLAG_BACKUP_SEMANTICS = 0x02000000  # lets a folder be opened too
    _ERROR_SHARING_VIOLATION = 32
    _INVALID_HANDLE = wintypes.HANDLE(-1).value

    def held_open(path: str | os.PathLike[str]) -> bool:
        """True when another program holds ``path`` open without sharing delete access: a rename over it or its
        removal would be refused (ERROR_SHARING_VIOLATION)."""
        handle = _kernel32.CreateFileW(
            os.fspath(path), _DELETE, _SHARE_ALL, None, _OPEN_EXISTING, _FILE_FLAG_BACKUP_SEMANTICS, None
        )
        if handle == _INVALID_HANDLE:
            return bool(ctypes.get_last_error() == _ERROR_SHARING_VIOLATION)
        _kernel32.CloseHandle(handle)
        return False

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

    def held_open(path: str | os.PathLike[str]) -> bool:
        """Never on POSIX: an open file can always be renamed over or removed."""
        return False

    def pread(fd: int, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes of ``fd`` from ``offset`` (fewer at the end of the file)."""
        return os.pread(fd, size, offset)

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        """Write ``data`` into ``fd`` at ``offset``; the bytes written."""
        return os.pwrite(fd, data, offset)
