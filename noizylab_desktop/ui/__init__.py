"""The PySide6 tray app: the only Qt code; ``bridge`` is the one place service events become Qt signals."""
