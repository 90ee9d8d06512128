"""The ``[sync]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from noizylab_desktop.core.settings_schema import section, setting


def _default_folder() -> Path:
    return Path.home() / "NOIZYLAB Sync"


def _gib_to_bytes(gib: float) -> int:
    return int(gib * 1024**3)


@section("sync")
@dataclass(frozen=True)
class SyncSettings:
    # Where folders offered to peers' shares live (their --remote is relative to it).
    folder: Path = setting(default_factory=_default_folder, lenient=True)
    # Safety-net full rescan of every share. Watchers on both sides and the peer's change notices find changes at
    # once, so a rescan of 10,000 files (~0.3 s of CPU on each node) every 10 minutes keeps an idle node idle.
    rescan_s: float = setting(600.0, above=0, unit="seconds", lenient=True)
    poll_s: float = setting(10.0, above=0, unit="seconds", lenient=True)  # how often a plain SSH target is scanned
    quiet_ms: int = setting(50, low=0, high=300, unit="milliseconds", lenient=True)  # the watcher's quiet window
    keep_versions_days: float = setting(30.0, above=0, unit="days", lenient=True)
    # Text files up to this size keep their ancestor and get three-way merges.
    merge_max_bytes: int = setting(1024 * 1024, low=0, high=64 * 1024 * 1024, unit="bytes", hint="0: no merging")
    # The most one folder served to a peer's share may hold, in bytes (0: no quota, only the disk's free space);
    # the table gives it in GiB.
    quota_bytes: int = setting(
        0, key="quota_gb", kind=float, low=0, unit="GiB", hint="0: no quota", convert=_gib_to_bytes
    )
