"""The tray's Qt clipboard backend carries images both ways (PySide6 6.11 refused the bytes format it passed)."""

from __future__ import annotations

import io

from PIL import Image
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QClipboard, QImage
from PySide6.QtWidgets import QApplication

from noizylab_desktop.services.clipboard.content import Clip
from noizylab_desktop.ui.clipboard_qt import QtClipboardBackend
from tests.ui.waiting import Run


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def test_an_image_from_a_peer_lands_on_the_clipboard_as_png_and_as_a_bitmap(run: Run, tray_app: QApplication) -> None:
    clipboard = tray_app.clipboard()
    backend = QtClipboardBackend(clipboard)
    picture = png(32, 16)

    async def scenario() -> bytes:
        await backend.write(Clip(png=picture))
        return (await backend.read()).clip.png

    assert run(scenario()) == picture
    image = clipboard.image(QClipboard.Mode.Clipboard)
    assert (image.width(), image.height()) == (32, 16)


def test_a_bitmap_copied_in_an_app_is_read_as_png_for_the_peer(run: Run, tray_app: QApplication) -> None:
    clipboard = tray_app.clipboard()
    bitmap = QImage(24, 12, QImage.Format.Format_RGB32)
    bitmap.fill(0x3366CC)
    data = QMimeData()
    data.setImageData(bitmap)  # no image/png of its own: the backend encodes it
    clipboard.setMimeData(data, QClipboard.Mode.Clipboard)

    read = run(QtClipboardBackend(clipboard).read()).clip.png

    assert Image.open(io.BytesIO(read)).size == (24, 12)
