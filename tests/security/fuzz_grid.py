"""A host under attack for a whole test module: one real node whose sync folder sits in a sentinel folder, and two
paired hostile peers, ``mallory`` holding every permission and ``nobody`` holding none.

Everything lives under one folder (``Grid.root``): the nodes' homes and the sentinel folder, which holds the sync
folder, the node's working folder, and the targets of two links inside the share (``shared/link`` to a folder,
``shared/outfile`` to a file). ``Grid.written_outside`` says what changed there outside the sync folder, bar the
host's own logs and state. The peer nodes are stopped once paired: only their identities call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from noizylab_desktop.core.permissions import SCOPES
from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.display_support import host_display
from tests.security.hostile import Hostile, hostile_peer
from tests.slowness import scaled

SHARE = "0123456789ab"  # mallory's share: the host's sync/shared

# What the host itself writes while it runs: its logs, and its SQLite state and the folders holding it (an offered
# share's index is named by the share's ID: 12 hex digits), and the working folders of a Dask cluster it runs.
NODE_WRITES = re.compile(
    r"host/(logs(/[^/]+)?|state(/sync)?(/[a-z]+(-[0-9a-f]{12})?\.sqlite(-journal|-wal|-shm)?)?|state/dask(/.*)?)"
)

Snapshot = dict[str, tuple[int, int, int]]


@dataclass
class Grid:
    host: NodeProcess
    root: Path
    sync: Path
    peers: dict[str, Hostile]  # "mallory" (every permission), "nobody" (none)
    health: pb_grpc.NodeStub  # Node.Health as mallory

    def snapshot(self) -> Snapshot:
        """Every entry under ``root`` outside the sync folder: (mode, size, mtime) by path, links not followed."""
        seen = {}
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            dirs[:] = [d for d in dirs if here / d != self.sync]
            for name in (*dirs, *files):
                path = here / name
                info = path.lstat()
                seen[path.relative_to(self.root).as_posix()] = (info.st_mode, info.st_size, info.st_mtime_ns)
        return seen

    def written_outside(self, before: Snapshot) -> list[str]:
        """Paths outside the sync folder that appeared, changed or went away since ``before``, bar the host's own."""
        after = self.snapshot()
        changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        return sorted(p for p in changed if not NODE_WRITES.fullmatch(p))

    def log(self) -> str:
        """The host's log as it is now."""
        return (self.host.home / "logs" / "noizylab.log").read_text(encoding="utf-8", errors="replace")


def grid_in(root: Path, display: str | None = None) -> Iterator[Grid]:
    """Build the grid under ``root`` (the host on X ``display`` when given), yield it, stop its nodes."""
    sentinel = root / "sentinel"
    sync = sentinel / "sync"
    shared = sync / "shared"
    shared.mkdir(parents=True)
    (shared / "a.txt").write_text("hello")
    (sentinel / "elsewhere").mkdir()
    (sentinel / "outside.txt").write_text("keep")
    (sentinel / "cwd").mkdir()
    (shared / "link").symlink_to(sentinel / "elsewhere")
    (shared / "outfile").symlink_to(sentinel / "outside.txt")
    # Files peers send land in the sync folder too, so the sentinel's check covers the rest of the tree.
    host = NodeProcess(root / "host", "host", sync={"folder": str(sync)}, files={"folder": str(sync / "received")})
    host.cwd = sentinel / "cwd"  # a relative path the node wrongly used would land in the sentinel
    mallory, nobody = NodeProcess(root / "mallory", "mallory"), NodeProcess(root / "nobody", "nobody")
    if display is None:
        start_all(host, mallory, nobody)
    else:
        for _ in host_display(display):
            start_all(host, mallory, nobody)
    peers: dict[str, Hostile] = {}
    try:
        peers["mallory"] = hostile_peer(host, mallory, *SCOPES)
        peers["nobody"] = hostile_peer(host, nobody)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(NodeProcess.stop, (mallory, nobody)))
        chan = peers["mallory"].chan
        metrics = mpb_grpc.MetricsStub(chan)
        sampled = grpc.StatusCode.OK
        wait_for(lambda: peers["mallory"].code_of(lambda: metrics.Snapshot(pb.Empty(), timeout=10)) == sampled,
                 20, "the host's first metrics sample")  # fmt: skip
        spb_grpc.SyncStub(chan).Offer(spb.OfferRequest(share_id=SHARE, remote="shared"), timeout=scaled(20))
        yield Grid(host, root, sync, peers, pb_grpc.NodeStub(chan))
    finally:
        for hostile in peers.values():
            hostile.close()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(NodeProcess.stop, (host, mallory, nobody)))
