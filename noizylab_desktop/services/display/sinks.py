"""Which input sink a host uses to inject a viewer's input: XTEST on X11, SendInput on Windows, Quartz on macOS."""

from __future__ import annotations

import os
import sys

from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.inject import InputSink, XTestSink


def open_sink(platform: str = sys.platform) -> InputSink:
    """The input sink for this platform, or a one-line error saying why input cannot be injected here."""
    if platform == "win32":
        from noizylab_desktop.services.display.inject_windows import SendInputSink

        return SendInputSink()
    if platform == "darwin":
        from noizylab_desktop.services.display.inject_macos import QuartzSink

        return QuartzSink()  # raises the Accessibility hint when macOS does not allow it
    if platform.startswith("linux") and os.environ.get("DISPLAY"):
        return XTestSink()
    if platform.startswith("linux"):
        raise DisplayError("input injection needs an X11 display (DISPLAY is not set; Wayland alone is not supported)")
    raise DisplayError(f"input injection is not available on {platform}")
