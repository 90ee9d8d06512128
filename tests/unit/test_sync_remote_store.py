"""Both kinds of a share's other side are ``RemoteStore``s: a paired node's (``PeerRemote``, which is also a
``PeerStore``) and a plain SSH server's (``SshRemote``, which is not). This file is in mypy's list, so the typed
assignments below are checked statically; each kind then syncs a share both ways against the real embedded server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from noizylab_desktop.services.sync.remote import PeerRemote, PeerStore, RemoteStore, SshRemote
from tests.sync_harness import FolderPeer, SyncPair, settled, tree


def kinds(p: SyncPair) -> tuple[PeerRemote, SshRemote]:
    peer = PeerRemote(p.target, p.client_key, p.index, FolderPeer(p.remote, p.offer_index))
    ssh = SshRemote(p.target, p.client_key, p.index)
    as_peer: PeerStore = peer  # a paired node has everything a peer offers
    stores: list[RemoteStore] = [peer, ssh]  # and both are what the engine and executor need
    assert as_peer is stores[0]
    return peer, ssh


@pytest.mark.parametrize("kind", ["peer", "ssh"])
def test_each_kind_of_remote_is_a_remote_store_and_syncs_a_share_both_ways(tmp_path: Path, kind: str) -> None:
    loop = asyncio.new_event_loop()
    p = SyncPair(tmp_path)
    try:
        loop.run_until_complete(p.start())
        peer, ssh = kinds(p)
        assert isinstance(peer, PeerStore) and not isinstance(ssh, PeerStore), "only a peer has the peer's calls"
        assert peer.block_level and not ssh.block_level, "block hashes come from a peer's index only"
        remote = p.remote_side = peer if kind == "peer" else ssh
        mine, theirs, big = b"from here", b"from there", os.urandom(3 * 1024 * 1024)
        settled(p.local / "docs" / "mine.txt", mine)
        settled(p.local / "big.bin", big)
        settled(p.remote / "theirs.txt", theirs)
        assert loop.run_until_complete(p.sync())
        expected = {"docs/mine.txt": mine, "big.bin": big, "theirs.txt": theirs}
        assert tree(p.local) == tree(p.remote) == expected
        assert remote.bytes_sent >= len(mine) + len(big) and remote.bytes_received >= len(theirs)
        (p.remote / "theirs.txt").unlink()
        settled(p.local / "docs" / "mine.txt", b"edited here")
        assert loop.run_until_complete(p.sync())
        assert tree(p.local) == tree(p.remote) == {"docs/mine.txt": b"edited here", "big.bin": big}
    finally:
        loop.run_until_complete(p.close())
        loop.close()
