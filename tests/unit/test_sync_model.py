"""A Hypothesis state machine: random creates, edits, renames and deletes on both sides with syncs in between.

After every sync both sides hold the same files, every file's last content before the sync survives (as a file,
a conflict copy or a version), no temp file is visible, and a second sync changes nothing.
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

    def teardown(self) -> None:
        self.loop.run_until_complete(self.pair.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def root(self, side: str) -> Path:
        return self.pair.local if side == "local" else self.pair.remote

    def content(self, big: bool) -> bytes:
        self.counter += 1
        head = f"write {self.counter}\n".encode()
        # Some writes span several blocks so block deltas and partial changes are exercised too.
        return head + bytes(300 * 1024) + head if big else head

    @rule(side=st.sampled_from(SIDES), name=st.sampled_from(NAMES), big=st.booleans())
    def write(self, side: str, name: str, big: bool) -> None:
        path = self.root(side) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.content(big))

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
        last = set(tree(self.pair.local).values()) | set(tree(self.pair.remote).values())
        assert self.loop.run_until_complete(self.pair.sync()), self.pair.engine and self.pair.engine.failed
        self.synced_once = True
        local, remote = tree(self.pair.local), tree(self.pair.remote)
        assert local == remote, "both sides converge"
        kept = set(everything(self.pair.local)) | set(everything(self.pair.remote))
        assert last <= kept, "every last write survives as a file, a conflict copy or a version"
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
