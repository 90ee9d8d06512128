"""Placeholder replaced by the tray implementation."""

from __future__ import annotations

from noizylab_desktop.config import Paths, Settings
from noizylab_desktop.errors import DisplayUnavailableError


def run_tray(paths: Paths, settings: Settings) -> int:
    """Run the tray app hosting a ``Node`` on the qasync loop."""
    raise DisplayUnavailableError("the tray is not built yet: run the headless node with `noizylab node`")
