"""The ``[files]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from noizylab_desktop.core.settings_schema import section, setting

SECTION = "files"


def _default_folder() -> Path:
    return Path.home() / "Downloads" / "NOIZYLAB"


@section(SECTION)
@dataclass(frozen=True)
class FilesSettings:
    """Where files peers send land, and the size of one frame's data."""

    folder: Path = setting(default_factory=_default_folder)
    chunk_bytes: int = setting(1024 * 1024, low=4096, high=3 * 1024 * 1024, unit="bytes")
