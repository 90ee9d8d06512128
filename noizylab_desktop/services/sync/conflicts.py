"""Conflict copies and the versions folder.

A conflict copy is named ``name.sync-conflict-YYYYMMDD-HHMMSS-<peer>.ext`` from the losing version's mtime and the
name of the node it came from, so every side computes the same name. A conflict copy never gets a conflict copy of
its own: when one is edited on both sides, the newer wins and the older goes to the versions folder.
"""

from __future__ import annotations

import re
import time
from collections.abc import Container

from noizylab_desktop.services.sync.ignore import VERSIONS_DIR

_CONFLICT = re.compile(r"\.sync-conflict-\d{8}-\d{6}-[^./]+(\.|$)")


def _safe_peer(peer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", peer)[:32] or "peer"


def conflict_name(rel: str, mtime_ns: int, peer: str, taken: Container[str] = ()) -> str:
    """The conflict copy's relative path for ``rel``, last modified at ``mtime_ns`` on ``peer`` (not in ``taken``)."""
    name = _conflict_name(rel, mtime_ns, _safe_peer(peer))
    n = 2
    while name in taken:
        name, n = _conflict_name(rel, mtime_ns, f"{_safe_peer(peer)}-{n}"), n + 1
    return name


def _conflict_name(rel: str, mtime_ns: int, peer: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns // 1_000_000_000))
    head, _, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dotfile like ".bashrc"
        stem, ext = name, ""
    new = f"{stem}.sync-conflict-{stamp}-{peer}" + (f".{ext}" if ext else "")
    return f"{head}/{new}" if head else new


def is_conflict_copy(rel: str) -> bool:
    """True for a path named like a conflict copy."""
    return bool(_CONFLICT.search(rel.rsplit("/", 1)[-1]))


def version_name(rel: str, when: float, n: int = 1) -> str:
    """Where a replaced or deleted file is kept: ``.nzversions/<path>~YYYYMMDD-HHMMSS[-n][.ext]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when)) + (f"-{n}" if n > 1 else "")
    head, _, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    kept = f"{stem}~{stamp}" + (f".{ext}" if ext else "")
    return f"{VERSIONS_DIR}/{head}/{kept}" if head else f"{VERSIONS_DIR}/{kept}"
