"""Small files with a NOIZYLAB peer, many to a call: pushes read and hashed here and checked again there
(``Sync.PutFiles``), pulls read and hashed there and checked here before they become visible (``Sync.GetFiles``).
A file that fails, fails alone, with its reason; the others land."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.deferred import read_for_push
from noizylab_desktop.services.sync.localfs import write_files
from noizylab_desktop.services.sync.planner import Action, change_line
from noizylab_desktop.services.sync.remote import PeerStore, RemoteUnreachable, SmallFiles
from noizylab_desktop.services.sync.transfers import ChangedMeanwhile, action_bytes

if TYPE_CHECKING:
    from noizylab_desktop.services.sync.executor import Executor

logger = logging.getLogger(__name__)

BATCH_FILE = 256 * 1024  # pushes up to this size go many to a call to NOIZYLAB peers
BATCH_BYTES = 2 * 1024 * 1024  # per call (gRPC messages are capped at 4 MiB)
BATCH_FILES, FIRST_BATCH_FILES = 1000, 100  # files per call
PULL_FILES = 1000  # paths per GetFiles call


async def push_batched(ex: Executor, peer: PeerStore, actions: list[Action]) -> None:
    """Small pushes to a NOIZYLAB peer, many files per call: read and hashed here, checked again there."""
    chunks: list[list[Action]] = [[]]
    size = 0
    for action in actions:
        assert action.local is not None
        # The first batch is small, so the peer starts writing while this side still reads the next ones.
        count = FIRST_BATCH_FILES if len(chunks) == 1 else BATCH_FILES
        if chunks[-1] and (size + action.local.size > BATCH_BYTES or len(chunks[-1]) >= count):
            chunks.append([])
            size = 0
        chunks[-1].append(action)
        size += action.local.size
    # Two calls in flight, and the next batch read and hashed meanwhile, so the peer never waits for this side;
    # at most three batches are held in memory. Reads go one at a time: the first batch is then ready soonest.
    held, reading, sending = asyncio.Semaphore(3), asyncio.Lock(), asyncio.Semaphore(2)

    async def one(chunk: list[Action]) -> None:
        async with held:
            async with reading:
                files = await asyncio.to_thread(read_for_push, ex.fs, ex.index, chunk)
            try:
                async with sending:
                    failed = await peer.put_files([f for _, f in files])
            except SyncError as exc:
                raise RemoteUnreachable(exc.message) from exc
            landed = []
            for action, _ in files:
                if action.path in failed:
                    ex.progress.failed[action.path] = failed[action.path]
                else:
                    assert action.local is not None
                    landed.append(action.local)
                    ex.progress.changed.append(change_line("push", action.path, ex.remote.name))
            await asyncio.to_thread(ex.index.set_ancestors, landed, ex.local_name)
            ex.progress.done += sum(action_bytes(a) for a in chunk)
            ex.on_progress(ex.progress)

    try:
        async with asyncio.TaskGroup() as group:
            for chunk in chunks:
                group.create_task(one(chunk))
    except* RemoteUnreachable as lost:
        raise lost.exceptions[0] from None


async def pull_batched(ex: Executor, peer: PeerStore, actions: list[Action]) -> None:
    """Small pulls from a NOIZYLAB peer, many files per call: read and hashed there, checked here before they
    become visible; a file the peer could not read fails alone, with its reason."""
    wanted = {a.path: a for a in actions}
    gate = asyncio.Semaphore(2)

    async def one(chunk: list[Action]) -> None:
        async with gate:
            try:
                async for files, failed in peer.get_files([a.path for a in chunk]):
                    await asyncio.to_thread(_land, ex, files, failed, wanted)
                    ex.on_progress(ex.progress)
            except SyncError as exc:
                raise RemoteUnreachable(exc.message) from exc

    try:
        async with asyncio.TaskGroup() as group:
            for start in range(0, len(actions), PULL_FILES):
                group.create_task(one(actions[start : start + PULL_FILES]))
    except* RemoteUnreachable as lost:
        raise lost.exceptions[0] from None


def _land(ex: Executor, files: SmallFiles, failed: dict[str, str], wanted: dict[str, Action]) -> None:
    """Pulled small files into place (in a worker thread): each checked against the planned hash, none over
    a local file that changed since the scan; then recorded as synced in one transaction."""
    for rel, why in failed.items():
        ex.progress.failed[rel] = why
    ready: SmallFiles = []
    for rel, data, digest, _ in files:
        action = wanted.get(rel)
        if action is None or action.remote is None:
            continue
        ex.progress.done += len(data)
        if digest != action.remote.hash:
            logger.debug("%s changed on %s meanwhile; the next pass takes it", rel, ex.remote.name)
            continue
        try:
            ex._check_local(rel, action.local)
        except ChangedMeanwhile as exc:
            logger.debug("%s: %s", rel, exc.message)
            continue
        except SyncError as exc:  # e.g. a link here leads out of the share: this file fails, the rest land
            ex.progress.failed[rel] = exc.message
            continue
        ready.append((rel, data, action.remote.hash, action.remote.mtime_ns))  # verified again as written
    not_written = write_files(ex.fs.root, ready, ex.index, ex.fs)
    ex.progress.failed.update(not_written)
    landed = [wanted[rel].remote for rel, *_ in ready if rel not in not_written]
    ex.index.set_ancestors([e for e in landed if e is not None], ex.remote.name)
    ex.progress.changed.extend(change_line("pull", rel, ex.remote.name) for rel, *_ in ready if rel not in not_written)
