"""A Hypothesis state machine: random creates, edits, renames and deletes on both sides with syncs in between.

After every sync both sides hold the same files, every file's last content before the sync survives (as a file,
a conflict copy or a version), a clean merge holds both sides' edits, no temp file is visible, and a second sync
changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from noizylab_desktop.services.sync.events import ShareChanged
from tests.sync_harness import SyncPair, everything, tree

NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e/f.md", "Notes"]
SIDES = ["local", "remote"]


class SyncModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="nz-sync-model-"))
        self.loop = asyncio.new_event_loop()
        self.pair = SyncPair(self.dir)
        self.loop.run_until_complete(self.pair.start())
        self.counter = 0
        self.synced_once = False
        self.synced: dict[str, bytes] = {}  # both sides after the last sync: the ancestor of the next one

    def teardown(self) -> None:
        self.loop.run_until_complete(self.pair.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def root(self, side: str) -> Path:
        return self.pair.local if side == "local" else self.pair.remote

    def content(self, big: bool) -> bytes:
        self.counter += 1
        head = f"write {self.counter}\n".encode()
        # Some writes span several blocks so block deltas and partial changes are exercised too; the others are
        # text of several lines, so edits of single lines (``edit_line``) can merge.
        if big:
            return head + bytes(300 * 1024) + head
        return head + b"".join(f"write {self.counter} line {k}\n".encode() for k in range(1, 6))

    @rule(side=st.sampled_from(SIDES), name=st.sampled_from(NAMES), big=st.booleans())
    def write(self, side: str, name: str, big: bool) -> None:
        path = self.root(side) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.content(big))

    @rule(side=st.sampled_from(SIDES), name=st.sampled_from(NAMES), line=st.integers(0, 5))
    def edit_line(self, side: str, name: str, line: int) -> None:
        path = self.root(side) / name
        if not path.is_file():
            return
        lines = path.read_bytes().splitlines(keepends=True)
        if line < len(lines) and len(lines) > 2:
            self.counter += 1
            lines[line] = f"edit {self.counter}\n".encode()
            path.write_bytes(b"".join(lines))

    # Lines apart merge cleanly; the same or adjacent lines are a conflict.
    @rule(which=st.integers(0, 9), lines=st.sampled_from([(0, 3), (1, 4), (5, 2), (0, 5), (2, 2), (3, 4)]))
    def edit_lines_on_both_sides(self, which: int, lines: tuple[int, int]) -> None:
        """A concurrent edit of a file both sides hold: a clean merge when the lines are apart, else a conflict."""
        both = sorted(set(tree(self.pair.local)) & set(tree(self.pair.remote)))
        if both:
            for side, line in zip(SIDES, lines, strict=True):
                self.edit_line(side, both[which % len(both)], line)

    @rule(side=st.sampled_from(SIDES), name=st.sampled_from(NAMES))
    def delete(self, side: str, name: str) -> None:
        (self.root(side) / name).unlink(missing_ok=True)

    @rule(side=st.sampled_from(SIDES), old=st.sampled_from(NAMES), new=st.sampled_from(NAMES))
    def rename(self, side: str, old: str, new: str) -> None:
        src, dst = self.root(side) / old, self.root(side) / new
        if src.exists() and old != new:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)

    @rule()
    def sync(self) -> None:
        before_local, before_remote = tree(self.pair.local), tree(self.pair.remote)
        last = set(before_local.values()) | set(before_remote.values())
        seen = len(self.pair.events)
        assert self.loop.run_until_complete(self.pair.sync()), self.pair.engine and self.pair.engine.failed
        self.synced_once = True
        local, remote = tree(self.pair.local), tree(self.pair.remote)
        assert local == remote, "both sides converge"
        kept = set(everything(self.pair.local)) | set(everything(self.pair.remote))
        assert last <= kept, "every last write survives as a file, a conflict copy or a version"
        merged = {
            change.split(" ", 1)[1]
            for event in self.pair.events[seen:]
            if isinstance(event, ShareChanged)
            for change in event.changes
            if change.startswith("merged ")
        }
        for path in merged:
            ancestor = set(self.synced.get(path, b"").splitlines())
            result = set(local[path].splitlines())
            for side in (before_local, before_remote):
                assert set(side.get(path, b"").splitlines()) - ancestor <= result, "a merge holds both sides' edits"
        self.synced = local
        assert not [p for p in local if ".nzsync-" in p], "no temp file is visible"
        before = self.snapshot()
        assert self.loop.run_until_complete(self.pair.sync())
        assert self.snapshot() == before, "a second sync does nothing"

    def snapshot(self) -> dict[str, int]:
        return {
            str(p): p.stat().st_mtime_ns
            for root in (self.pair.local, self.pair.remote)
            for p in root.rglob("*")
            if p.is_file()
        }

    @precondition(lambda self: self.synced_once)
    @invariant()
    def no_conflict_of_a_conflict(self) -> None:
        assert not [p for p in tree(self.pair.local) if p.count(".sync-conflict-") > 1]


TestSyncModel = SyncModel.TestCase
TestSyncModel.settings = settings(
    max_examples=int(os.environ.get("NOIZYLAB_SYNC_EXAMPLES", "150")),
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
