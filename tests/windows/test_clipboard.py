"""Clipboard sync between a Windows node and a Linux node, each with the app's real clipboard service: on Windows the
headless node's pyperclip backend (polled; the formats read with the Win32 API for password managers' markers), on
Linux the X11 backend on a display of its own. A Windows program copies through the Win32 clipboard (here, this
test through ctypes); a Linux program copies with xclip.

Under Wine the Windows clipboard is Wine's, which it also offers as the X11 CLIPBOARD selection of its own display
(the tier's Xvfb): what the test sees through the Win32 API is what a Windows program would, and real Windows has no
X selections (a difference of Wine from Windows, ../shared/WINDOWS.md).
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Iterator
from ctypes import wintypes
from typing import Any

import pytest

from noizylab_desktop.services.clipboard.fallback import platform_secret, windows_formats
from tests.conftest import NodeProcess, wait_for
from tests.windows.conftest import LinuxNode, pair

CF_UNICODETEXT = 13
GMEM_MOVEABLE = 0x0002

user32 = ctypes.WinDLL("user32", use_last_error=True)
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
user32.OpenClipboard.argtypes = [wintypes.HWND]
user32.OpenClipboard.restype = wintypes.BOOL
user32.EmptyClipboard.restype = wintypes.BOOL
user32.CloseClipboard.restype = wintypes.BOOL
user32.SetClipboardData.argtypes = [wintypes.UINT, wintypes.HANDLE]
user32.SetClipboardData.restype = wintypes.HANDLE
user32.GetClipboardData.argtypes = [wintypes.UINT]
user32.GetClipboardData.restype = wintypes.HANDLE
user32.RegisterClipboardFormatW.argtypes = [wintypes.LPCWSTR]
user32.RegisterClipboardFormatW.restype = wintypes.UINT
kernel32.GlobalAlloc.argtypes = [wintypes.UINT, ctypes.c_size_t]
kernel32.GlobalAlloc.restype = wintypes.HGLOBAL
kernel32.GlobalLock.argtypes = [wintypes.HGLOBAL]
kernel32.GlobalLock.restype = ctypes.c_void_p
kernel32.GlobalUnlock.argtypes = [wintypes.HGLOBAL]


class OpenClipboard:
    """The Win32 clipboard held open (another program may hold it for a moment: retried for a few seconds)."""

    def __enter__(self) -> None:
        deadline = time.monotonic() + 5
        while not user32.OpenClipboard(None):
            if time.monotonic() > deadline:
                raise AssertionError(f"the clipboard stayed held by another program ({ctypes.get_last_error()})")
            time.sleep(0.02)

    def __exit__(self, *_: object) -> None:
        user32.CloseClipboard()


def global_bytes(data: bytes) -> Any:
    handle = kernel32.GlobalAlloc(GMEM_MOVEABLE, len(data))
    ctypes.memmove(kernel32.GlobalLock(handle), data, len(data))
    kernel32.GlobalUnlock(handle)
    return handle


def windows_copy(text: str, markers: dict[str, bytes] | None = None) -> None:
    """Copy ``text`` as a Windows program does (``CF_UNICODETEXT``), with any registered ``markers`` beside it."""
    with OpenClipboard():
        assert user32.EmptyClipboard()
        assert user32.SetClipboardData(CF_UNICODETEXT, global_bytes((text + "\0").encode("utf-16-le")))
        for name, value in (markers or {}).items():
            assert user32.SetClipboardData(user32.RegisterClipboardFormatW(name), global_bytes(value))


def windows_paste() -> str | None:
    """The clipboard's text as a Windows program pastes it, or None."""
    with OpenClipboard():
        handle = user32.GetClipboardData(CF_UNICODETEXT)
        if not handle:
            return None
        pointer = kernel32.GlobalLock(handle)
        try:
            return ctypes.wstring_at(pointer)
        finally:
            kernel32.GlobalUnlock(handle)


def counters(node: NodeProcess) -> dict[str, int]:
    return dict(node.json("clip", "status")["counters"])


def test_the_win32_reader_sees_the_password_managers_markers_and_their_values() -> None:
    """What the node's pyperclip backend asks the Win32 API before it reads a copy (a 64-bit handle cut to 32 bits
    by ctypes' default result type made the values unreadable)."""
    windows_copy("ordinary text")
    assert not platform_secret()
    windows_copy("hunter2", {"ExcludeClipboardContentFromMonitorProcessing": b"\0"})
    assert platform_secret()
    windows_copy("kept out of history", {"CanIncludeInClipboardHistory": (0).to_bytes(4, "little")})
    formats, read = windows_formats()
    assert "CanIncludeInClipboardHistory" in formats and read("CanIncludeInClipboardHistory") == bytes(4)
    assert platform_secret()
    windows_copy("allowed in history", {"CanIncludeInClipboardHistory": (1).to_bytes(4, "little")})
    assert not platform_secret()
    assert windows_paste() == "allowed in history"


@pytest.fixture
def synced(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode]
) -> Iterator[tuple[NodeProcess, LinuxNode]]:
    """A Windows node and a Linux node (on an X display of its own) paired, clipboard sync on both ways."""
    windows = make_node("omen").start()
    linux = make_linux_node("penguin", display=True).start()
    pair(windows, linux)
    windows.cli("clip", "on", "penguin")
    linux.cli("clip", "on", "omen")
    assert windows.json("clip", "status")["backend"] == "pyperclip"
    assert linux.json("clip", "status")["backend"] == "x11"
    yield windows, linux


def test_text_copied_on_windows_arrives_on_linux_and_back(synced: tuple[NodeProcess, LinuxNode]) -> None:
    windows, linux = synced
    windows_copy("from the Omen: grüße ✓")
    wait_for(lambda: linux.paste() == "from the Omen: grüße ✓", what="the Windows copy pasted on Linux")

    linux.copy("from the penguin: ünïcode ✓\nsecond line")
    wait_for(lambda: windows_paste() == "from the penguin: ünïcode ✓\nsecond line", what="the Linux copy on Windows")
    last = windows.json("clip", "status")["last"]
    assert last["from"] == "penguin" and last["kinds"] == "text"
    # Each side's copy travelled once and nothing echoed back.
    assert counters(windows)["sends"] == 1 and counters(windows)["writes"] == 1
    assert counters(linux)["sends"] == 1 and counters(linux)["writes"] == 1


def test_a_windows_password_managers_copy_stays_on_windows(synced: tuple[NodeProcess, LinuxNode]) -> None:
    windows, linux = synced
    windows_copy("before the password")
    wait_for(lambda: linux.paste() == "before the password", what="the ordinary copy on Linux")
    # KeePass and 1Password mark a copied password with this registered format (the Win32 API reads it).
    windows_copy("hunter2", {"ExcludeClipboardContentFromMonitorProcessing": b"\0"})
    wait_for(lambda: counters(windows)["skipped_secret"] >= 1, what=f"omen to keep the password ({counters(windows)})")
    assert "password manager" in windows.json("clip", "status")["last_notice"]
    # The node polls the clipboard four times a second: the password it saw again and again was one copy (it was
    # counted at every poll before).
    wait_for(lambda: counters(windows)["copies"] >= 1 and windows_paste() == "hunter2", what="the password to sit")
    windows_copy("after the password")
    wait_for(lambda: linux.paste() == "after the password", what="the next ordinary copy on Linux")
    assert counters(linux)["received"] == 2, "the password never reached the Linux node"
    assert counters(windows)["skipped_secret"] == 1
