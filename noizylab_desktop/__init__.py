"""NOIZYLAB Desktop: a tray app that joins a person's computers into one private grid."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
