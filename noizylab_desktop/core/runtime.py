"""The running node's runtime file (``runtime.json``: its pid and bound ports), as the node wrote it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_runtime_file(path: Path) -> dict[str, Any] | None:
    """The running node's pid and ports, or None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
