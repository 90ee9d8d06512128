"""An in-process sync pair for tests and the bench: the real embedded SFTP server on loopback serving a folder,
and a real ``ShareEngine`` on another folder syncing with it through a real ``PeerRemote`` (no node processes, so
many examples run quickly). The peer's own calls are answered in process by ``FolderPeer``, which does what the
peer's ``Sync`` service does with the folder, without gRPC; a test injects a fault by subclassing it."""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh

from noizylab_desktop.core.events import Event
from noizylab_desktop.core.sessions import Sessions
from noizylab_desktop.services.sync.blocks import hash_file
from noizylab_desktop.services.sync.engine import ShareEngine
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, read_files, write_files
from noizylab_desktop.services.sync.names import resolve_inside
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.receive import FileHeader, receive
from noizylab_desktop.services.sync.remote import PeerRemote, SmallFiles, SshRemote, Target
from noizylab_desktop.services.sync.scanner import scan
from noizylab_desktop.services.sync.sending import file_chunks
from noizylab_desktop.services.sync.sftp_server import SftpServer, ShareSftp
from noizylab_desktop.services.sync.store import Share

PEER_FP = b"\x01" * 32
SHARE_ID = "0123456789ab"


def _key() -> tuple[bytes, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_private_key(), key.export_public_key().decode().strip()


class FolderPeer:
    """``PeerCalls`` answered in process from the peer's folder, as its ``Sync`` service would answer them."""

    def __init__(self, root: Path, index: ShareIndex) -> None:
        self.root = root
        self.scans = index  # the peer's own index of the folder

    async def index(self) -> AsyncIterator[list[Entry]]:
        result = await asyncio.to_thread(scan, self.root, self.scans)
        yield list(result.entries.values())

    async def hash(self, path: str) -> tuple[bytes, bytes]:
        hashed = await asyncio.to_thread(hash_file, resolve_inside(self.root, path))
        return hashed.digest, hashed.blocks

    async def put(self, files: SmallFiles) -> dict[str, str]:
        return await asyncio.to_thread(write_files, self.root, files, self.scans)

    async def send(self, header: FileHeader, chunks: AsyncIterator[tuple[int, bytes]]) -> tuple[bytes, bytes]:
        got = await receive(self.root, header, chunks, self.scans)
        return got.digest, got.blocks

    async def get(self, paths: list[str]) -> AsyncIterator[tuple[SmallFiles, dict[str, str]]]:
        groups = read_files(self.root, paths, 2 * 1024 * 1024)
        while (group := await asyncio.to_thread(next, groups, None)) is not None:
            yield group

    async def stream(self, path: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
        async for item in file_chunks(resolve_inside(self.root, path), offset):
            yield item


class SyncPair:
    """``local`` is synced by an engine; ``remote`` is served by the embedded SFTP server (the peer's side)."""

    peer_remote: PeerRemote  # the peer as the engine sees it (from start()); its ``calls`` go to a ``FolderPeer``
    remote_side: PeerRemote | SshRemote  # what the engine syncs with: ``peer_remote`` unless a test swaps it

    def __init__(
        self,
        base: Path,
        fs: LocalFs | None = None,
        target_os: str = "linux",
        sftp_class: type[ShareSftp] = ShareSftp,
        pull_streams: bool = True,
    ) -> None:
        self.base = base
        self.local = base / "local"
        self.remote = base / "remote"
        self.local.mkdir(parents=True, exist_ok=True)
        self.remote.mkdir(parents=True, exist_ok=True)
        self.events: list[Event] = []
        self.client_key, client_public = _key()
        self.host_key, self.host_public = _key()
        self.client_public = " ".join(client_public.split()[:2])
        self.server = SftpServer(self.host_key, self, Sessions())
        self.server.sftp_class = sftp_class
        self.target_os = target_os  # the serving side's OS, as its Offer reply would say
        self.offer_index = ShareIndex(base / "offer.sqlite")
        self.index = ShareIndex(base / "share.sqlite")
        self.share = Share(SHARE_ID, str(self.local), "peer-id", "beta", "remote")
        self.engine: ShareEngine | None = None
        self.port = 0
        self._fs = fs
        self.paused: str = ""
        self.pull_streams = pull_streams  # large pulls over the stream, as between nodes (else SFTP, as to resume)

    # What the SFTP server asks about peers (``PeerAccess``): one peer, allowed to sync ``remote``.

    def key_owner(self, key: str) -> bytes | None:
        return PEER_FP if key == self.client_public else None

    def roots_for(self, fp: bytes) -> dict[str, Path]:
        return {SHARE_ID: self.remote} if fp == PEER_FP else {}

    def may_sync(self, fp: bytes) -> bool:
        return fp == PEER_FP

    async def start(self) -> None:
        self.port = await self.server.start("127.0.0.1", 0)

        self.peer_remote = PeerRemote(
            self.target,
            self.client_key,
            self.index,
            FolderPeer(self.remote, self.offer_index),
            stream_pulls=self.pull_streams,
        )
        self.remote_side = self.peer_remote

        def pause(share: Share, reason: str) -> Share:
            self.paused = reason
            return share

        self.engine = ShareEngine(
            self.share, self.index, lambda: self.remote_side, "alpha", self.events.append, pause, fs=self._fs
        )

    @property
    def target(self) -> Target:
        """Where the embedded server serves the share (its port once started)."""
        return Target("127.0.0.1", self.port, "alpha", "/" + SHARE_ID, self.host_public, "beta", self.target_os)

    def ssh_side(self, probe_os: bool = False) -> SshRemote:
        """An ``SshRemote`` to the embedded server, as to any SSH server (no Sync calls, whole files); it replaces
        ``remote_side`` for the engine's next connection."""
        remote = SshRemote(dataclasses.replace(self.target, probe_os=probe_os), self.client_key, self.index)
        self.remote_side = remote
        return remote

    async def sync(self) -> bool:
        """Sync passes until clean; True when both sides ended equal."""
        assert self.engine is not None
        return await self.engine.sync_now()

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        await self.remote_side.close()
        await self.server.stop()
        self.index.close()
        self.offer_index.close()


Pair = tuple[SyncPair, asyncio.AbstractEventLoop]  # a started pair and the loop that drives it (`pair` fixture)


def tree(root: Path) -> dict[str, bytes]:
    """Visible files under ``root`` (not the versions folder), by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".nzversions/")
    }


def settled(path: Path, data: bytes) -> None:
    """Write ``data`` with an mtime 5 s ago: past the windows in which a write could hide in one mtime tick."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(time.time_ns() - 5_000_000_000,) * 2)


def everything(root: Path) -> list[bytes]:
    """Contents of every file under ``root``, the versions folder included."""
    return [p.read_bytes() for p in root.rglob("*") if p.is_file()]


class Sshd:
    """OpenSSH's sshd on a free loopback port, with a temporary host key, accepting the given public keys."""

    def __init__(self, base: Path, authorized: list[str]) -> None:

        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        host_key = base / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        self.host_public = (base / "host_ed25519.pub").read_text().strip()
        (base / "authorized_keys").write_text("\n".join(authorized) + "\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = base / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        try:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder (absent until the service ran)
        except PermissionError:
            pass  # not root: sshd then runs without privilege separation for this user's logins
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    why = self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"sshd did not start: {why!r}") from None
                time.sleep(0.05)  # polling a port with a deadline, not synchronising on time
        raise RuntimeError("sshd did not listen in 10 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
