"""Rotating a node's SSH key: the identity key signs the new one, the peer's SFTP server takes it at once and refuses
the old one afterwards, and folder sync goes on across the rotation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.tasks_helpers import pair


async def log_in(port: int, user: str, private_pem: bytes) -> None:
    """One SSH login to the SFTP server on ``port`` with the key ``private_pem``."""
    conn = await asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        client_keys=[asyncssh.import_private_key(private_pem)],
        known_hosts=None,
        agent_path=None,
    )
    conn.close()
    await conn.wait_closed()


def test_an_ssh_key_rotation_keeps_sync_going_and_the_old_key_is_refused_by_the_peer(
    make_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    alpha, beta = start_all(
        make_node("alpha", sync={"folder": str(tmp_path / "alpha-sync")}),
        make_node("beta", sync={"folder": str(tmp_path / "beta-sync")}),
    )
    pair(alpha, beta)
    alpha.cli("allow", "beta", "sync")
    beta.cli("allow", "alpha", "sync")
    local, remote = tmp_path / "work", tmp_path / "beta-sync" / "work"
    local.mkdir()
    (local / "before.txt").write_text("before the rotation\n")
    alpha.cli("share", "add", str(local), "--peer", "beta")
    alpha.cli("sync", "wait", "--timeout", "30")
    assert (remote / "before.txt").read_text() == "before the rotation\n"

    old_key = alpha.identity().ssh_private_pem
    was = alpha.json("keys", "list")["ssh"]["fingerprint"]
    (local / "during.txt").write_text("written as the key rotates\n")
    rotated = alpha.json("keys", "rotate", "ssh")
    assert rotated["told"] == ["beta"] and rotated["id"] == rotated["old_id"] == alpha.id  # the ID stays
    assert alpha.json("keys", "list")["ssh"]["fingerprint"] == rotated["ssh_fingerprint"] != was

    wait_for(lambda: (remote / "during.txt").exists(), 30, "the file written during the rotation on beta")
    (local / "after.txt").write_text("after the rotation\n")
    (remote / "from-beta.txt").write_text("beta's edit\n")
    wait_for(lambda: (remote / "after.txt").exists(), 30, "alpha's file written after the rotation on beta")
    wait_for(lambda: (local / "from-beta.txt").exists(), 30, "beta's edit on alpha")
    alpha.cli("sync", "wait", "--timeout", "30")

    # beta's SFTP server takes alpha's new key and refuses the old one.
    port = int(beta.status()["ports"]["sftp"])
    asyncio.run(log_in(port, alpha.id, alpha.identity().ssh_private_pem))
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(log_in(port, alpha.id, old_key))
