"""New files are hashed while they are sent, not in the scan before planning.

A file the peer has never seen (no entry there, no ancestor) can only be pushed whole, so the planner needs no
hash for it: the scan leaves it unhashed and the push reads it once, hashing the bytes as they go out
(``sending.py``). Files whose hash the planner does need are hashed here first: those the peer or the ancestor
knows by name (or by a name differing only in case), and those that may be a rename of a file gone from this side
(an ancestor of the same size), since a rename is found by equal content.

Large files (``DEFER_BYTES`` and up) are left unhashed whether new or changed. Small new files are too when the
peer takes batched pushes: ``read_for_push`` hashes the bytes it reads for the batch, so each is read once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from noizylab_desktop.services.sync.blocks import hash_bytes, hash_file
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs
from noizylab_desktop.services.sync.planner import Action, Entry
from noizylab_desktop.services.sync.scanner import ScanResult

DEFER_BYTES = 16 * 1024 * 1024  # below this, hashing in the scan costs less than a millisecond or so per file
RACY_NS = 50_000_000  # a file modified more recently than this is hashed first (see ``racy``)


def must_hash(
    unhashed: Mapping[str, str],
    local: Mapping[str, Entry],
    there: Mapping[str, Entry],
    ancestor: Mapping[str, Entry],
) -> list[str]:
    """The deferred files whose hash the planner needs now (pure)."""
    known = {p.casefold() for p in there} | {p.casefold() for p in ancestor}
    gone_sizes = {a.size for p, a in ancestor.items() if p not in local}
    return sorted(p for p in unhashed if p.casefold() in known or local[p].size in gone_sizes)


def hash_now(index: ShareIndex, scanned: ScanResult, rels: list[str]) -> None:
    """Hash ``rels`` of ``scanned`` in place (blocking: run in a thread) and record them in the scan cache, as the
    scan itself would have (stat, then hash: the executor checks both again before it sends)."""
    fresh: list[Cached] = []
    for rel in rels:
        path = Path(scanned.unhashed.pop(rel))
        del scanned.entries[rel]
        try:
            st = os.stat(path, follow_symlinks=False)
            hashed = hash_file(path)
        except OSError as exc:
            scanned.errors[rel] = exc.strerror or str(exc)
            continue
        entry = Entry(rel, hashed.size, st.st_mtime_ns, hashed.digest, hashed.blocks)
        scanned.entries[rel] = entry
        fresh.append(Cached(entry, st.st_ino))
    if fresh:
        index.put_local(fresh)


def racy(entry: Entry, now_ns: int) -> bool:
    """True when a write could follow within the same timestamp tick as the file's mtime (file timestamps move in
    clock ticks of a few ms), so a stat after sending could not tell that it changed: such a file is hashed first."""
    return now_ns - entry.mtime_ns < RACY_NS


def read_for_push(
    fs: LocalFs, index: ShareIndex, actions: list[Action]
) -> list[tuple[Action, tuple[str, bytes, bytes, int]]]:
    """Each pushed file as read now, with its action (blocking: run in a thread). A file the scan hashed is left
    out when its bytes no longer match; one it left unhashed, when its size or mtime changed since the scan: the
    next pass sees either. The hashes of those left unhashed come from the bytes read, go into the action sent
    and into the scan cache (unless a write could still hide in the file's mtime tick)."""
    out = []
    fresh: list[Cached] = []
    now_ns = time.time_ns()
    for action in actions:
        have = action.local
        assert have is not None
        try:
            with open(fs.path(action.path), "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError:
            continue
        if have.hash:
            if hashlib.sha256(data).digest() != have.hash:
                continue
        else:
            if (len(data), st.st_size, st.st_mtime_ns) != (have.size, have.size, have.mtime_ns):
                continue
            hashed = hash_bytes(data)
            have = Entry(have.path, have.size, have.mtime_ns, hashed.digest, hashed.blocks)
            action = dataclasses.replace(action, local=have)
            if not racy(have, now_ns):
                fresh.append(Cached(have, st.st_ino))
        out.append((action, (action.path, data, have.hash, have.mtime_ns)))
    if fresh:
        index.put_local(fresh)
    return out
