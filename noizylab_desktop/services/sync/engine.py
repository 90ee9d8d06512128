"""One share's loop: wait for a reason (local change, remote notice, timer, a request), then scan both sides, plan
and apply, repeating until a pass finds nothing to do. Mass deletes and a vanished root pause the share and ask.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.core.events import Event
from noizylab_desktop.core.words import plural
from noizylab_desktop.services.sync.deferred import DEFER_BYTES, hash_now, must_hash
from noizylab_desktop.services.sync.events import ShareChanged, ShareProgress, ShareState, SyncConflict
from noizylab_desktop.services.sync.executor import BATCH_FILE, Executor, Progress
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, prune_versions
from noizylab_desktop.services.sync.merge import DEFAULT_MAX_BYTES
from noizylab_desktop.services.sync.merging import Merger
from noizylab_desktop.services.sync.names import case_insensitive, this_os
from noizylab_desktop.services.sync.planner import case_clashes, plan
from noizylab_desktop.services.sync.remote import PeerStore, RemoteStore
from noizylab_desktop.services.sync.scanner import RootMissingError, scan
from noizylab_desktop.services.sync.store import Share
from noizylab_desktop.services.sync.watcher import Watcher

logger = logging.getLogger(__name__)

MAX_PASSES = 4
UNWATCHED_RESCAN_S = 60.0  # without a watcher the rescan is the only way to see local changes: run it more often
FILE_RETRY_FIRST_S = 2.0
FILE_RETRY_MAX_S = 60.0


class PeerBlockedError(SyncError):
    """The peer cannot sync this share now, for a reason a person must see as the share's state: ``state`` is
    "peer offline", "not allowed" or "not paired" (``message`` says the rest)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


def file_retry_delay(failures: int) -> float:
    """Seconds before the next try after ``failures`` passes in a row that left files unsynced."""
    return min(FILE_RETRY_MAX_S, FILE_RETRY_FIRST_S * float(2 ** max(0, failures - 1)))


class ShareEngine:
    """Keeps one share in sync while started."""

    def __init__(
        self,
        share: Share,
        index: ShareIndex,
        remote_factory: Callable[[], asyncio.Future[RemoteStore] | RemoteStore],
        local_name: str,
        publish: Callable[[Event], None],
        on_pause: Callable[[Share, str], Share],
        notices: Callable[[], AsyncIterator[object]] | None = None,
        rescan_s: float = 600.0,
        poll_s: float = 10.0,
        quiet_s: float = 0.2,
        keep_versions_s: float = 30 * 86400.0,
        fs: LocalFs | None = None,
        merge_max_bytes: int = DEFAULT_MAX_BYTES,
        announce: Callable[[list[str]], None] | None = None,
        after_pass: Callable[[], None] | None = None,
    ) -> None:
        self.share = share
        self.index = index
        self.root = Path(share.local)
        self.fs = fs or LocalFs(self.root, announce)  # announce: what it lands, for Watch streams (landings.py)
        self.merger = Merger(index, merge_max_bytes)
        self.after_pass = after_pass  # e.g. the manager's Trimmer.soon (trim.py)
        self._remote_factory = remote_factory
        self.remote: RemoteStore | None = None
        self.local_name = local_name
        self.publish = publish
        self.on_pause = on_pause
        self.notices = notices
        self.rescan_s = poll_s if share.is_ssh else rescan_s
        self.quiet_s = quiet_s
        self.keep_versions_s = keep_versions_s
        self.state = "waiting"
        self.message = "starting"
        # Why the peer's side cannot be reached now ("peer offline", "not allowed", "not paired"), and the pass
        # (its generation) that found it; "" once a pass gets through.
        self.blocked = ""
        self._blocked_at = -1
        self.last_sync = 0.0
        self.files = 0
        self.bytes = 0
        self.conflicts = 0
        self.merges = 0
        self.pending = 0
        self.progress = Progress()
        self.failed: dict[str, str] = {}
        self.recent: collections.deque[str] = collections.deque(maxlen=20)
        self._wake = asyncio.Event()
        self._requested = 0  # generation asked for (by a change or a waiter)
        self.dirty_since: float | None = None  # monotonic time of the oldest change not yet synced
        self._clean = -1  # last generation that ended with both sides equal
        self._clean_changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: Watcher | None = None
        self._last_prune = 0.0
        self._allow_deletes = False
        self._file_failures = 0  # passes in a row that left files unsynced: how long the next try waits

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.root.is_dir():
            self._watcher = Watcher(self.root, loop, self._local_changed, quiet_s=self.quiet_s)
            try:
                self._watcher.start()
            except OSError as exc:
                self.rescan_s = min(self.rescan_s, UNWATCHED_RESCAN_S)
                logger.warning("cannot watch %s (%s): relying on rescans every %.0f s", self.root, exc, self.rescan_s)
                self._watcher = None
        self._tasks = [asyncio.create_task(self._loop(), name=f"sync {self.share.id}")]
        if self.notices is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name=f"sync notices {self.share.id}"))
        self.request()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.remote is not None:
            await self.remote.close()
            self.remote = None

    def request(self) -> int:
        """Ask for a sync pass; returns the generation that ``wait_clean`` can wait for."""
        self._requested += 1
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()
        self._wake.set()
        return self._requested

    async def wait_clean(self, generation: int) -> None:
        """Return once a pass that started after ``generation`` was asked for found both sides equal."""
        async with self._clean_changed:
            await self._clean_changed.wait_for(lambda: self._clean >= generation)

    async def wait_settled(self, generation: int) -> None:
        """Return once a pass that started after ``generation`` was asked for found both sides equal, or found that
        the peer cannot be reached (``blocked`` says why): waiting longer would not make the share sync."""
        async with self._clean_changed:
            await self._clean_changed.wait_for(
                lambda: self._clean >= generation or (bool(self.blocked) and self._blocked_at >= generation)
            )

    # ------------------------------------------------------------------ triggers

    def _local_changed(self, paths: set[str]) -> None:
        cache = self.index.local_cached(paths)
        for rel in paths:
            cached = cache.get(rel)
            try:
                st = os.stat(self.root / rel, follow_symlinks=False)
            except OSError:
                if cached is not None or rel not in cache:
                    break  # a delete (or a folder event): worth a pass
                continue
            if cached is None or (st.st_size, st.st_mtime_ns, st.st_ino) != (
                cached.entry.size,
                cached.entry.mtime_ns,
                cached.inode,
            ):
                break
        else:
            return  # only our own writes, already in the index
        self.request()

    async def _listen(self) -> None:
        assert self.notices is not None
        while True:
            live = False
            try:
                async for _ in self.notices():
                    live = True
                    self.request()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the stream means: reconnect later
                logger.debug("change notices for %s stopped: %s", self.share.id, exc)
            if live:
                # The peer went away, refused us or restarted: a pass finds out which, so the share's state says so
                # now rather than "in sync" until the next rescan.
                self.request()
            await asyncio.sleep(2.0)  # reconnect backoff, not synchronisation

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.rescan_s)
            except TimeoutError:
                self._requested += 1
            self._wake.clear()
            if self.share.paused:
                self._set("paused", self.share.reason or "paused")
                continue
            generation = self._requested
            try:
                clean = await self.sync_now()
            except asyncio.CancelledError:
                raise
            except (SyncError, asyncssh.Error, OSError) as exc:
                message = exc.message if isinstance(exc, SyncError) else str(exc)
                if isinstance(exc, PeerBlockedError):
                    async with self._clean_changed:
                        self.blocked, self._blocked_at = exc.state, generation
                        self._clean_changed.notify_all()
                if isinstance(exc, RootMissingError):
                    self.share = self.on_pause(self.share, message)
                    self._set("paused", message)
                else:
                    self._set("error", message)
                    if self.remote is not None:
                        await self.remote.close()
                        self.remote = None
                    self._retry_later()
                continue
            except Exception:
                # A bug must not end the share's loop for good: log it, say so, and try again later.
                logger.exception("sync of %s failed unexpectedly", self.share.local)
                self._set("error", "unexpected failure: see `noizylab logs`")
                self.remote = None
                self._retry_later()
                continue
            if clean:
                async with self._clean_changed:
                    self._clean = max(self._clean, generation)
                    if self._requested == generation:
                        self.dirty_since = None
                    self._clean_changed.notify_all()

    def _retry_later(self) -> None:
        asyncio.get_running_loop().call_later(2.0, self._wake.set)

    async def _remote(self) -> RemoteStore:
        if self.remote is not None and not self.remote.connected:
            await self.remote.close()  # dropped since the last pass: the next call connects afresh
        if self.remote is None:
            made = self._remote_factory()
            self.remote = await made if isinstance(made, asyncio.Future) else made
        return self.remote

    async def sync_now(self) -> bool:
        """Passes until one finds nothing to do; True when the share ended in sync."""
        more = True
        for _ in range(MAX_PASSES):
            self._set("syncing", "comparing")
            remote = await self._remote()
            self.blocked = ""
            # Large new files are hashed while they stream to a NOIZYLAB peer, not here (see deferred.py).
            defer = DEFER_BYTES if isinstance(remote, PeerStore) else 0
            # So are small new files that a peer's batched push reads anyway (deferred.py, read_for_push).
            new = BATCH_FILE if isinstance(remote, PeerStore) and remote.batch_puts else 0
            scanning = asyncio.ensure_future(asyncio.to_thread(scan, self.root, self.index, defer, new))
            if not isinstance(remote, PeerStore):
                await asyncio.wait({scanning})  # an SSH server's listing is walked in this process: one at a time
            # A NOIZYLAB peer scans its side in its own process while this side scans here: the pass takes the
            # longer of the two scans rather than their sum (at 30,000 files each was a second or more).
            try:
                there = await remote.listing()
            finally:
                scanned = await scanning
            ancestor = self.index.ancestor(scanned.entries)
            if needed := must_hash(scanned.unhashed, scanned.entries, there, ancestor):
                await asyncio.to_thread(hash_now, self.index, scanned, needed)
            decided = plan(scanned.entries, there, ancestor, self.local_name, remote.name)
            clashes = case_clashes(scanned.entries, remote.name) if remote.case_insensitive else {}
            if case_insensitive(this_os()):
                clashes.update(case_clashes(there, self.local_name))
            # A file or folder here that could not be read is held as it is on both sides (its absence from the
            # scan is not a delete) and shown as a per-file error.
            clashes.update(scanned.errors)
            if clashes:
                decided = decided.without(clashes)
            self.files = len(scanned.entries)
            self.bytes = sum(e.size for e in scanned.entries.values())
            work = decided.work
            self.pending = len(work)
            if decided.too_many_deletes() and not self._allow_deletes:
                reason = (
                    f"this sync would delete {decided.deletes} of {plural(decided.tracked, 'file')}: check, then run "
                    f"`noizylab share resume {self.share.local} --allow-deletes`"
                )
                self.share = self.on_pause(self.share, reason)
                self._set("paused", reason)
                return False
            self._allow_deletes = False
            if work:
                self._set("syncing", plural(len(work), "change"))
            executor = Executor(self.fs, self.index, remote, self.local_name, self._on_progress, self.merger)
            result = await executor.run(decided)
            await asyncio.to_thread(self.merger.settled, lambda rel: self.fs.path(rel).read_bytes(), decided, result)
            self.pending = 0
            self.merges += len(result.merged)
            self.failed = {**clashes, **result.failed}
            for change in result.changed:
                self.recent.appendleft(change)
            if result.changed:
                self.publish(ShareChanged(share_id=self.share.id, changes=tuple(result.changed[:50])))
            for copy in result.conflicts:
                self.conflicts += 1
                self.publish(SyncConflict(share_id=self.share.id, path=copy.split(".sync-conflict-")[0], copy=copy))
            if not work:
                more = False
                break
        self.last_sync = time.time()
        if self.after_pass is not None:
            self.after_pass()
        if time.time() - self._last_prune > 3600:
            self._last_prune = time.time()
            await asyncio.to_thread(prune_versions, self.root, self.keep_versions_s)
        if self.failed:
            # The rest is in sync; what failed (a name the peer cannot hold, a full disk there...) rarely heals by
            # itself, so each further try waits twice as long, up to a minute: a change on either side still
            # starts a pass at once.
            self._file_failures += 1
            delay = file_retry_delay(self._file_failures)
            first = next(iter(self.failed.items()))
            files = plural(len(self.failed), "file")
            self._set("error", f"{files} not synced; {first[0]}: {first[1]}; retrying in {delay:g} s")
            asyncio.get_running_loop().call_later(delay, self._wake.set)
            return False
        self._file_failures = 0
        if more:
            self._wake.set()
            return False
        watching = self._watcher.warning if self._watcher is not None else ""
        self._set("idle", f"in sync; {watching}" if watching else "in sync")  # e.g. polling: which limit to raise
        return True

    def _on_progress(self, progress: Progress) -> None:
        self.progress = progress
        if progress.total >= 8 * 1024 * 1024:
            self.publish(ShareProgress(share_id=self.share.id, done=progress.done, total=progress.total))

    def _set(self, state: str, message: str) -> None:
        if (state, message) != (self.state, self.message):
            self.state, self.message = state, message
            self.publish(ShareState(share_id=self.share.id, local=self.share.local, state=state, message=message))

    def set_share(self, share: Share, allow_deletes: bool = False) -> None:
        """The share was paused or resumed (its row already updated); ``allow_deletes`` applies a held mass delete."""
        self.share = share
        self._allow_deletes = allow_deletes
        self.request()
