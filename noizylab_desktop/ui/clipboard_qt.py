"""The tray's clipboard backend: Qt's clipboard, watched through ``QClipboard.dataChanged`` (no polling).

Qt shows each platform's native formats as MIME types (Windows' and macOS's password-manager markers arrive
wrapped, e.g. ``application/x-qt-windows-mime;value="..."``), so one marker check serves every OS.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData
from PySide6.QtGui import QClipboard, QImage, QImageWriter

from noizylab_desktop.services.clipboard.backend import Snapshot
from noizylab_desktop.services.clipboard.content import HTML, PNG, Clip
from noizylab_desktop.services.clipboard.fallback import platform_secret
from noizylab_desktop.services.clipboard.markers import is_secret


def _png_of(data: QMimeData) -> bytes:
    if data.hasFormat(PNG):
        return bytes(data.data(PNG).data())
    if not data.hasImage():
        return b""
    image = QImage(data.imageData())
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    # A writer, not ``image.save(buffer, b"PNG")``: PySide6 6.11 refuses a bytes format there (and in
    # ``QImage.fromData``) with a ValueError, which its stubs do not show.
    QImageWriter(buffer, QByteArray(b"PNG")).write(image)
    return bytes(buffer.data().data())


class QtClipboardBackend:
    """Reads and writes run on the Qt main thread, which under qasync is the loop's thread."""

    name = "qt"

    def __init__(self, clipboard: QClipboard) -> None:
        self._clipboard = clipboard
        self._changed: Callable[[], None] | None = None

    def watch(self, changed: Callable[[], None]) -> bool:
        self._changed = changed
        self._clipboard.dataChanged.connect(self._on_changed)
        return True

    def _on_changed(self) -> None:
        if self._changed is not None:
            self._changed()

    async def read(self) -> Snapshot:
        data = self._clipboard.mimeData(QClipboard.Mode.Clipboard)
        if data is None:
            return Snapshot()
        formats = list(data.formats())
        # platform_secret: the native marker list too, since Qt may not show a macOS pasteboard type it cannot map.
        if is_secret(formats, lambda fmt: bytes(data.data(fmt).data())) or platform_secret():
            return Snapshot(secret=True)
        return Snapshot(
            Clip(
                text=data.text() if data.hasText() else "",
                html=data.html() if data.hasHtml() else "",
                png=_png_of(data),
            )
        )

    async def write(self, clip: Clip) -> None:
        data = QMimeData()
        if clip.text:
            data.setText(clip.text)
        if clip.html:
            data.setData(HTML, QByteArray(clip.html.encode()))
        if clip.png:
            data.setData(PNG, QByteArray(clip.png))
            data.setImageData(QImage.fromData(clip.png))  # apps that paste the platform's bitmap (format: sniffed)
        self._clipboard.setMimeData(data, QClipboard.Mode.Clipboard)

    def close(self) -> None:
        if self._changed is not None:
            self._changed = None
            self._clipboard.dataChanged.disconnect(self._on_changed)
