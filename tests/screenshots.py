"""Screenshots a UI test keeps for people to look at: ``build/artefacts/screenshots/NAME.png`` in the checkout, so a CI
run leaves every screen it drew (the tray menus, the viewer, the dashboard...) beside its results.

``NOIZYLAB_SCREENSHOTS`` names another folder: the Windows tier's tests run inside Wine, where the checkout's
``build/`` is out of reach; the tier copies that folder's pictures into ``build/artefacts/screenshots/`` after."""

from __future__ import annotations

import os
import re
from pathlib import Path

from PySide6.QtWidgets import QWidget

FOLDER = Path(
    os.environ.get("NOIZYLAB_SCREENSHOTS")
    or Path(__file__).resolve().parent.parent / "build" / "artefacts" / "screenshots"
)


def keep(widget: QWidget, name: str) -> Path:
    """Save what ``widget`` shows now as ``NAME.png`` (``name`` made file-safe); the path it was saved to."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    if not widget.isVisible():
        widget.adjustSize()  # a menu not popped up yet has no size of its own: take the one it would show at
    if not widget.grab().save(str(path)):
        raise AssertionError(f"could not save a screenshot to {path}")
    return path
