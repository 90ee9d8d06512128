"""A share whose other side is a plain OpenSSH server (a NAS): whole files over SFTP, scans for remote changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest

from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.remote import SshRemote, Target
from tests.conftest import NodeProcess, wait_for
from tests.sync_harness import Sshd, tree


@pytest.fixture
def node_and_sshd(make_node: Callable[..., NodeProcess], tmp_path: Path) -> Iterator[tuple[NodeProcess, Sshd]]:
    node = make_node("alpha", sync={"folder": str(tmp_path / "sync"), "poll_s": 0.5})
    node.start()
    sshd = Sshd(tmp_path / "sshd", [node.identity().ssh_public])
    yield node, sshd
    sshd.stop()


def test_a_share_with_an_openssh_server_syncs_both_ways(
    node_and_sshd: tuple[NodeProcess, Sshd], tmp_path: Path
) -> None:
    node, sshd = node_and_sshd
    local, nas = tmp_path / "photos", tmp_path / "nas" / "photos"
    local.mkdir()
    nas.mkdir(parents=True)
    (local / "a.jpg").write_bytes(b"\xff\xd8" + bytes(600_000))
    (nas / "from-nas.txt").write_text("already there")
    (tmp_path / "host.pub").write_text(sshd.host_public)
    peer = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    node.cli("share", "add", str(local), "--peer", peer, "--remote", str(nas), "--host-key", str(tmp_path / "host.pub"))
    node.cli("sync", "wait", "--timeout", "30")
    assert tree(local) == tree(nas) and set(tree(nas)) == {"a.jpg", "from-nas.txt"}

    (nas / "from-nas.txt").write_text("changed on the NAS")
    wait_for(lambda: (local / "from-nas.txt").read_text() == "changed on the NAS", what="the NAS change, by polling")
    (local / "a.jpg").unlink()
    wait_for(lambda: not (nas / "a.jpg").exists(), what="the delete on the NAS")
    assert list((nas / ".nzversions").iterdir())[0].name.startswith("a~")
    assert node.json("sync", "status")[0]["peer"] == "127.0.0.1"


def test_a_wrong_host_key_is_refused_with_one_line(node_and_sshd: tuple[NodeProcess, Sshd], tmp_path: Path) -> None:
    node, sshd = node_and_sshd
    (tmp_path / "d").mkdir()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    peer = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    node.cli("share", "add", str(tmp_path / "d"), "--peer", peer, "--remote", str(tmp_path), "--host-key", other)
    with pytest.raises(AssertionError) as failure:
        node.cli("sync", "wait", "--timeout", "3")
    assert "not in sync after 3 s" in str(failure.value) and "cannot reach 127.0.0.1 over SFTP" in str(failure.value)


def test_transfers_to_openssh_use_its_advertised_limits_and_whole_files(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    sshd = Sshd(tmp_path / "sshd", [key.export_public_key().decode().strip()])
    (tmp_path / "nas").mkdir()
    index = ShareIndex(tmp_path / "i.sqlite")
    target = Target("127.0.0.1", sshd.port, sshd.user, str(tmp_path / "nas"), sshd.host_public, "nas")
    remote = SshRemote(target, key.export_private_key(), index)
    data = bytes(range(256)) * 8192  # 2 MiB

    async def go() -> tuple[int, bytes, bool]:
        try:
            (tmp_path / "f").write_bytes(data)
            await remote.upload(tmp_path / "f", "sub/f")
            sftp = await remote.sftp()
            listing = await remote.listing()
            return sftp.limits.max_read_len, listing["sub/f"].hash, remote.block_level
        finally:
            await remote.close()

    try:
        max_read, digest, block_level = asyncio.run(go())
    finally:
        sshd.stop()
        index.close()
    import hashlib

    assert max_read == 261_120, "OpenSSH's advertised read limit is used, never 262,144"
    assert digest == hashlib.sha256(data).digest(), "remote hashes come from sha256sum over SSH"
    assert not block_level
