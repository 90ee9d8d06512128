"""Local folder → entries, hashing only files whose size, mtime or inode changed since the last scan.

Symlinks are never followed (a link could lead out of the share); they are skipped and logged once.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import hash_file
from noizylab_desktop.services.sync.ignore import TEMP_PREFIX, VERSIONS_DIR, Ignore, is_internal
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.localfs import temp_name
from noizylab_desktop.services.sync.planner import Entry

logger = logging.getLogger(__name__)

RACY_NS = 2_000_000_000
RACY_MAX_BYTES = 8 * 1024 * 1024
STALE_TEMP_NS = 24 * 3600 * 1_000_000_000  # a temp file nobody resumed for a day is dropped


def _remove_stale(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class RootMissingError(SyncError):
    """The share's folder is gone (unmounted disk, deleted folder): sync pauses rather than delete everything."""


def _temp_targets(prefix: str, items: list[os.DirEntry[str]]) -> dict[str, os.DirEntry[str]]:
    """Temp name → the entry it is the temp of, for a folder holding temps (``temp_name`` is one per path)."""
    if not any(item.name.startswith(TEMP_PREFIX) for item in items):
        return {}
    out = {}
    for item in items:
        if not is_internal(item.name):
            name = item.name if item.name.isascii() else unicodedata.normalize("NFC", item.name)
            out[temp_name(prefix + name).rpartition("/")[2]] = item
    return out


def _settled(target: os.DirEntry[str] | None, temp: os.stat_result) -> bool:
    """Whether a temp can no longer become its file: that path is a folder now, or its file was written (landed
    by another route or edited) after the temp's last write, so a resume would start over anyway."""
    if target is None:
        return False  # a new file's transfer, resumed by the next push or pull (or dropped after a day)
    try:
        st = target.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_ctime_ns > temp.st_mtime_ns)


@dataclass
class ScanResult:
    entries: dict[str, Entry]
    hashed: int = 0
    skipped_links: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    unhashed: dict[str, str] = field(default_factory=dict)  # path → where on disk: large files left to hash later


def scan(root: Path, index: ShareIndex, defer_bytes: int = 0, defer_new: int = 0) -> ScanResult:
    """Walk ``root`` (blocking; run in a thread) and refresh the index's local cache. With ``defer_bytes``, new or
    changed files of at least that size are not hashed here: their entries carry an empty hash, they stay out of
    the cache, and ``unhashed`` lists them (``deferred.py`` decides which need their hash before planning). With
    ``defer_new``, so are files the cache does not know yet of at most that size (a NOIZYLAB peer's batched push
    hashes them as it reads them)."""
    if not root.is_dir():
        raise RootMissingError(f"the share folder {root} is gone: reconnect its disk or remove the share")
    ignore = Ignore.load(root)
    cache = index.local_cache()
    result = ScanResult({})
    fresh: list[Cached] = []
    now_ns = time.time_ns()
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        try:
            items = list(os.scandir(folder))
        except OSError as exc:
            result.errors[prefix or "."] = exc.strerror or str(exc)
            continue
        spelled: dict[str, str] = {}  # NFC name → the spelling on disk, for names that are not plain ASCII
        if not all(item.name.isascii() for item in items):
            items.sort(key=lambda item: item.name != unicodedata.normalize("NFC", item.name))  # NFC spellings first
        targets = _temp_targets(prefix, items)
        for item in items:
            # Keys are NFC (the wire form): a name stored NFD (as macOS does) is the same file as its NFC twin.
            rel = prefix + (item.name if item.name.isascii() else unicodedata.normalize("NFC", item.name))
            if not item.name.isascii():
                twin = spelled.setdefault(rel, item.name)
                if (
                    twin != item.name
                ):  # two names on a disk that keeps both; peers (and the wire) cannot tell them apart
                    result.errors[prefix + item.name] = (
                        f"differs from {prefix + twin} only in Unicode normalization (NFC/NFD), which other systems "
                        "treat as the same name: rename one"
                    )
                    continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished while scanning: the next event or scan sees it
            if stat.S_ISLNK(st.st_mode):
                result.skipped_links.append(rel)
                continue
            if stat.S_ISDIR(st.st_mode):
                if not ignore.ignored(rel, is_dir=True):
                    stack.append((rel + "/", item.path))
                continue
            if not stat.S_ISREG(st.st_mode) or ignore.ignored(rel):
                if is_internal(rel) and not rel.startswith(VERSIONS_DIR):
                    if now_ns - st.st_mtime_ns > STALE_TEMP_NS or _settled(targets.get(item.name), st):
                        _remove_stale(item.path)
                continue
            old = cache.get(rel)
            # A file modified within the last RACY_NS may change again inside the same mtime tick: hash it again.
            racy = now_ns - st.st_mtime_ns < RACY_NS and st.st_size < RACY_MAX_BYTES
            if (
                old
                and not racy
                and (old.entry.size, old.entry.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
            ):
                result.entries[rel] = old.entry
                continue
            if (defer_bytes and st.st_size >= defer_bytes) or (defer_new and old is None and st.st_size <= defer_new):
                result.entries[rel] = Entry(rel, st.st_size, st.st_mtime_ns, b"")
                result.unhashed[rel] = item.path
                continue
            try:
                hashed = hash_file(item.path)
            except OSError as exc:
                result.errors[rel] = exc.strerror or str(exc)
                continue
            entry = Entry(rel, hashed.size, st.st_mtime_ns, hashed.digest, hashed.blocks)
            result.entries[rel] = entry
            fresh.append(Cached(entry, st.st_ino))
            result.hashed += 1
    gone = [p for p in cache if p not in result.entries]
    if fresh or gone:
        index.put_local(fresh, gone)
    if result.skipped_links:
        logger.info("skipped %d symlinks in %s (links are not followed)", len(result.skipped_links), root)
    return result
