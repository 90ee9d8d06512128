"""The ``[sync]`` table of the node's config, parsed and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noizylab_desktop.core.errors import ConfigError


@dataclass(frozen=True)
class SyncSettings:
    folder: Path  # where folders offered to peers' shares live (their --remote is relative to it)
    # Safety-net full rescan of every share. Watchers on both sides and the peer's change notices find changes at
    # once, so a rescan of 10,000 files (~0.3 s of CPU on each node) every 10 minutes keeps an idle node idle.
    rescan_s: float = 600.0
    poll_s: float = 10.0  # how often a plain SSH target is scanned for remote changes
    quiet_ms: int = 50  # watcher quiet window (at most 300 ms)
    keep_versions_days: float = 30.0
    merge_max_bytes: int = 1024 * 1024  # text files up to this size keep their ancestor and get three-way merges
    # The most one folder served to a peer's share may hold, in bytes (0: no quota, only the disk's free space).
    quota_bytes: int = 0

    @classmethod
    def parse(cls, table: Mapping[str, Any]) -> SyncSettings:
        known = {"folder", "rescan_s", "poll_s", "quiet_ms", "keep_versions_days", "merge_max_bytes", "quota_gb"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[sync] has unknown keys {', '.join(unknown)}: allowed are {', '.join(sorted(known))}")
        folder = Path(str(table.get("folder", Path.home() / "NOIZYLAB Sync"))).expanduser()
        try:
            values = {k: float(table[k]) for k in ("rescan_s", "poll_s", "keep_versions_days") if k in table}
            quiet = int(table.get("quiet_ms", 50))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"[sync] needs numbers for rescan_s, poll_s, quiet_ms, keep_versions_days: {exc}"
            ) from exc
        if not 0 <= quiet <= 300:
            raise ConfigError(f"[sync] quiet_ms must be between 0 and 300, not {quiet}")
        if any(v <= 0 for v in values.values()):
            raise ConfigError("[sync] rescan_s, poll_s and keep_versions_days must be above 0")
        merge_max = table.get("merge_max_bytes", 1024 * 1024)
        if isinstance(merge_max, bool) or not isinstance(merge_max, int) or not 0 <= merge_max <= 64 * 1024 * 1024:
            raise ConfigError(
                f"[sync] merge_max_bytes must be a whole number of bytes from 0 (no merging) to 67108864, "
                f"not {merge_max!r}"
            )
        quota_gb = table.get("quota_gb", 0)
        if isinstance(quota_gb, bool) or not isinstance(quota_gb, int | float) or not 0 <= quota_gb < float("inf"):
            raise ConfigError(f"[sync] quota_gb must be a number of GiB, 0 or more (0: no quota), not {quota_gb!r}")
        quota = int(quota_gb * 1024**3)
        return cls(folder=folder, quiet_ms=quiet, merge_max_bytes=merge_max, quota_bytes=quota, **values)
