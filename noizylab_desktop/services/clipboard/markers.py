"""Password managers mark what they copy; content with any of these markers never leaves the machine.

Each platform has its own convention, and Qt shows the platform's native format names wrapped in a MIME type
(``application/x-qt-windows-mime;value="..."``, ``application/x-qt-mime-type-name;value="..."``), so the checks
accept both the bare and the wrapped names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

# KDE (Klipper, KeePassXC on Linux): the target's value says "secret".
KDE_HINT = "x-kde-passwordManagerHint"
# macOS (nspasteboard.org): present at all means "do not record, do not sync".
MAC_CONCEALED = "org.nspasteboard.ConcealedType"
MAC_TRANSIENT = "org.nspasteboard.TransientType"
# Windows: the first excludes from clipboard monitors outright; the second is a DWORD, 0 means "keep out of history".
WIN_EXCLUDE = "ExcludeClipboardContentFromMonitorProcessing"
WIN_HISTORY = "CanIncludeInClipboardHistory"

MARKERS = (KDE_HINT, MAC_CONCEALED, MAC_TRANSIENT, WIN_EXCLUDE, WIN_HISTORY)

_WRAPPED = re.compile(r'^application/x-qt-[a-z-]+;value="(?P<name>[^"]+)"$')


def native_name(fmt: str) -> str:
    """The platform's own format name inside a Qt-wrapped MIME type, else ``fmt`` itself."""
    match = _WRAPPED.match(fmt)
    return match.group("name") if match else fmt


def markers_present(formats: Iterable[str]) -> dict[str, str]:
    """Marker name → the format string as offered, for every marker among ``formats``."""
    found: dict[str, str] = {}
    for fmt in formats:
        name = native_name(fmt)
        if name in MARKERS:
            found[name] = fmt
    return found


def kde_secret(value: bytes) -> bool:
    return value.strip(b"\0 \n").lower() == b"secret"


def windows_history_excluded(value: bytes) -> bool:
    """``CanIncludeInClipboardHistory`` holds a little-endian DWORD; 0 keeps the content out."""
    return len(value) >= 4 and int.from_bytes(value[:4], "little") == 0


def is_secret(formats: Iterable[str], read: Callable[[str], bytes]) -> bool:
    """Any platform's marker among ``formats``; ``read(fmt)`` returns a format's bytes (only markers are read)."""
    present = markers_present(formats)
    if KDE_HINT in present and kde_secret(read(present[KDE_HINT])):
        return True
    if MAC_CONCEALED in present or MAC_TRANSIENT in present or WIN_EXCLUDE in present:
        return True
    return WIN_HISTORY in present and windows_history_excluded(read(present[WIN_HISTORY]))


def secret_in(values: Mapping[str, bytes]) -> bool:
    """``is_secret`` over formats whose values are already read."""
    return is_secret(values, lambda fmt: values.get(fmt, b""))
