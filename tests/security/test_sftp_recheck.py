"""Every SFTP operation asks again whether its peer may still sync (issue #14, item 4), so nothing slips through
between a deny and the disconnect that follows it.

The real embedded server runs in-process over a peer table the test flips, and here nothing ends the connection:
only the per-operation check stands between the peer and the share.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh

from noizylab_desktop.core.sessions import Ending, Sessions
from noizylab_desktop.services.sync.sftp_server import SftpServer
from tests.security.hostile import refusal

SHARE = "a1b2c3d4e5f6"
PEER_FP = b"\x07" * 32


class Peers:
    """One peer, whose ``sync`` the test turns off (``PeerAccess``)."""

    def __init__(self, key: str, root: Path) -> None:
        self.key, self.root, self.allowed = key, root, True

    def key_owner(self, key: str) -> bytes | None:
        return PEER_FP if key == self.key else None

    def roots_for(self, fp: bytes) -> dict[str, Path]:
        return {SHARE: self.root}

    def may_sync(self, fp: bytes) -> bool:
        return self.allowed


def test_each_sftp_operation_asks_again_whether_the_peer_may_sync(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "notes.txt").write_bytes(b"notes for the peer")
    host_key, client_key = asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519")
    peers = Peers(client_key.export_public_key().decode().strip(), share)
    sessions = Sessions()
    server = SftpServer(host_key.export_private_key(), peers, sessions)

    async def scenario() -> dict[str, str]:
        port = await server.start("127.0.0.1", 0)
        try:
            async with asyncssh.connect(
                "127.0.0.1", port, username="peer", client_keys=[client_key], known_hosts=None, agent_path=None
            ) as conn:
                sftp = await conn.start_sftp_client()
                planted = await sftp.open(f"/{SHARE}/planted.txt", "wb")
                await planted.write(b"before\n")
                notes = await sftp.open(f"/{SHARE}/notes.txt", "rb")
                assert await notes.read(6) == b"notes "
                assert sessions.count(PEER_FP) == 1, "the connection is held as the peer's session"

                peers.allowed = False  # denied, and (here) nothing disconnects it
                reasons = {
                    "write": await refusal(planted.write(b"after\n")),
                    "read": await refusal(notes.read(6)),
                    "fstat": await refusal(notes.stat()),
                    "fsetstat": await refusal(planted.chmod(0o600)),
                    "fsync": await refusal(planted.fsync()),
                    "stat": await refusal(sftp.stat(f"/{SHARE}/notes.txt")),
                    "open": await refusal(sftp.open(f"/{SHARE}/new.txt", "wb")),
                    "listdir": await refusal(sftp.listdir(f"/{SHARE}")),
                    "mkdir": await refusal(sftp.mkdir(f"/{SHARE}/folder")),
                    "remove": await refusal(sftp.remove(f"/{SHARE}/notes.txt")),
                    "rename": await refusal(sftp.rename(f"/{SHARE}/notes.txt", f"/{SHARE}/moved.txt")),
                }
                fresh = await conn.start_sftp_client()
                reasons["a new channel's stat"] = await refusal(fresh.stat(f"/{SHARE}/notes.txt"))
                assert not conn.is_closed(), "only the per-operation check refused"
        finally:
            await server.stop()
        return reasons

    reasons = asyncio.run(scenario())
    assert reasons == dict.fromkeys(reasons, Ending("sync").message)
    assert sorted(p.name for p in share.iterdir()) == ["notes.txt", "planted.txt"]
    assert (share / "planted.txt").read_bytes() == b"before\n"
