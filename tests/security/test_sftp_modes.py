"""What a peer writes over SFTP is a plain file or folder (issue #14, item 5): no setuid, setgid or sticky bit and no
change of owner, whichever request carries the mode; nothing but regular files is opened; and no link is made, so
none can lead out of the share. The hostile peer is a real asyncssh SFTP client holding the peer's own SSH key.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest

from noizylab_desktop._proto import noizylab_sync_pb2 as spb
from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
from tests.conftest import NodeProcess, within
from tests.security.hostile import Hostile, refusal

SHARE = "a1b2c3d4e5f6"
SPECIAL = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
T = TypeVar("T")


@pytest.fixture
def host(make_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """The node under attack, serving peers' shares from ``tmp_path/served``."""
    return make_node("host", sync={"folder": str(tmp_path / "served")}).start()


@pytest.fixture
def box(attacker: Callable[..., Hostile], tmp_path: Path) -> tuple[Hostile, Path]:
    """A peer allowed ``sync`` and the folder it offered (``served/box``, shown to it as ``/SHARE``)."""
    mallory = attacker("sync")
    mallory.stub(spb_grpc.SyncStub).Offer(spb.OfferRequest(share_id=SHARE, remote="box"), timeout=20)
    folder = tmp_path / "served" / "box"
    (folder / "notes.txt").write_bytes(b"notes for the peer")
    return mallory, folder


def over_sftp(mallory: Hostile, scenario: Callable[[asyncssh.SFTPClient], Coroutine[Any, Any, T]]) -> T:
    """Run ``scenario`` with an SFTP client logged in to the host as ``mallory``."""
    port = mallory.sftp_port()

    async def run() -> T:
        async with await mallory.ssh(port) as conn, conn.start_sftp_client() as sftp:
            return await scenario(sftp)

    return asyncio.run(run())


async def tried(awaitable: Awaitable[object]) -> None:
    """Send a request whose refusal is as good as its success, as long as what it asked for did not happen."""
    try:
        await awaitable
    except asyncssh.SFTPError:
        pass


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_setuid_setgid_and_sticky_bits_from_a_peer_are_stripped(box: tuple[Hostile, Path]) -> None:
    mallory, folder = box
    owner = os.lstat(folder / "notes.txt").st_uid

    async def scenario(sftp: asyncssh.SFTPClient) -> None:
        # Created with the bits (open with attributes), then chmod by path (setstat) and by handle (fsetstat).
        made = await sftp.open(f"/{SHARE}/made.sh", "wb", asyncssh.SFTPAttrs(permissions=0o4755))
        await made.write(b"#!/bin/sh\n")
        await made.chmod(0o2755)
        await made.close()
        for path, bits in (("notes.txt", 0o4755), ("up.sh", 0o4777), ("both.sh", 0o6777)):
            if path != "notes.txt":
                async with sftp.open(f"/{SHARE}/{path}", "wb") as f:
                    await f.write(b"#!/bin/sh\n")
            await sftp.chmod(f"/{SHARE}/{path}", bits)
        await tried(sftp.chmod(f"/{SHARE}/notes.txt", 0o4700, follow_symlinks=False))  # lsetstat@openssh.com
        # Folders: made with the bits (mkdir with attributes), then chmod.
        await sftp.mkdir(f"/{SHARE}/drop", asyncssh.SFTPAttrs(permissions=0o3777))
        await sftp.mkdir(f"/{SHARE}/tmp")
        await sftp.chmod(f"/{SHARE}/tmp", 0o1777)
        # A mode that names a FIFO still makes a regular file; nor does the peer choose who owns what it wrote.
        await sftp.open(f"/{SHARE}/pipe", "wb", asyncssh.SFTPAttrs(permissions=stat.S_IFIFO | 0o644))
        await tried(sftp.chown(f"/{SHARE}/up.sh", owner + 4242, owner + 4242))

    over_sftp(mallory, scenario)

    written = {p.name: p for p in folder.iterdir()}
    assert {name: mode(p) & SPECIAL for name, p in written.items()} == dict.fromkeys(written, 0), "no special bits"
    assert mode(folder / "up.sh") == 0o777 and mode(folder / "both.sh") == 0o777, "the plain bits still apply"
    assert mode(folder / "made.sh") == 0o755 and mode(folder / "tmp") == 0o777
    assert stat.S_ISREG(os.lstat(folder / "pipe").st_mode)
    assert os.lstat(folder / "up.sh").st_uid == owner


def test_a_fifo_in_a_share_is_refused_without_blocking_the_node(box: tuple[Hostile, Path]) -> None:
    mallory, folder = box
    os.mkfifo(folder / "pipe")  # made on the host (a peer cannot make one): opening it would wait for a writer

    async def scenario(sftp: asyncssh.SFTPClient) -> tuple[str, str, bytes]:
        try:
            for_reading = await within(refusal(sftp.open(f"/{SHARE}/pipe", "rb")), 10, "the FIFO open to answer")
            for_writing = await within(refusal(sftp.open(f"/{SHARE}/pipe", "ab")), 10, "the FIFO open to answer")
        finally:
            _release(folder / "pipe")
        async with sftp.open(f"/{SHARE}/notes.txt", "rb") as notes:
            return for_reading, for_writing, await within(notes.read(), 10, "the node to answer after the FIFO")

    for_reading, for_writing, notes = over_sftp(mallory, scenario)
    assert for_reading == for_writing == "only regular files can be opened in a share"
    assert notes == b"notes for the peer"


def _release(fifo: Path) -> None:
    """Free a node stuck opening ``fifo`` (had it tried), so that a failing test still ends."""
    for flags in (os.O_WRONLY, os.O_RDONLY):
        try:
            os.close(os.open(fifo, flags | os.O_NONBLOCK))
        except OSError:
            pass


def test_a_peer_cannot_make_links_nor_follow_one_out_of_the_share(box: tuple[Hostile, Path], tmp_path: Path) -> None:
    mallory, folder = box
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for peers")
    (folder / "out").symlink_to(outside)  # a link made on the host that leads out of the share

    async def scenario(sftp: asyncssh.SFTPClient) -> dict[str, str]:
        return {
            "symlink out": await refusal(sftp.symlink("/etc", f"/{SHARE}/etc")),
            "relative symlink out": await refusal(sftp.symlink("../../outside", f"/{SHARE}/up")),
            "symlink inside": await refusal(sftp.symlink("notes.txt", f"/{SHARE}/alias")),
            "hard link": await refusal(sftp.link(f"/{SHARE}/notes.txt", f"/{SHARE}/hard.txt")),
            "read through a link": await refusal(sftp.open(f"/{SHARE}/out/secret.txt", "rb")),
            "write through a link": await refusal(sftp.open(f"/{SHARE}/out/planted.txt", "wb")),
            "list through a link": await refusal(sftp.listdir(f"/{SHARE}/out")),
        }

    reasons = over_sftp(mallory, scenario)
    assert all(reasons.values()), reasons
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "out"], "no link was made"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"], "nothing was written outside"
