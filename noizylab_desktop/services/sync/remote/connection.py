"""One SFTP connection (asyncssh) to a share's other side, reconnecting on the next call after a drop, and the
spelling of paths there: Windows-unsafe names encoded, NFD for macOS, or as the last listing found them spelled.

Block sizes follow the server's ``limits@openssh.com`` reply (asyncssh's ``block_size=-1``), so OpenSSH never gets a
request over its 261,120-byte cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
from dataclasses import dataclass

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.names import case_insensitive, check_rel, decode_path, encode_path
from noizylab_desktop.services.sync.remote.store import RemoteUnreachable
from noizylab_desktop.services.sync.ssh_os import probe_os

PARALLEL_REQUESTS = 128
PARALLEL_FILES = 64


def has_aes() -> bool:
    """Whether this CPU has AES instructions (then AES-GCM beats ChaCha20-Poly1305)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " aes" in line for line in f)
    except OSError:
        import platform

        return platform.machine().lower() in ("arm64", "aarch64", "amd64", "x86_64")


def ciphers() -> list[str]:
    """Our cipher preference, sent first so the server picks it when it has it too."""
    gcm = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    chacha = ["chacha20-poly1305@openssh.com"]
    return gcm + chacha + ["aes128-ctr"] if has_aes() else chacha + gcm + ["aes128-ctr"]


@dataclass(frozen=True)
class Target:
    """Where a share's other side lives."""

    host: str
    port: int
    username: str
    root: str  # absolute SFTP path of the share's folder
    host_key: str  # the server's public key line ("" → ~/.ssh/known_hosts)
    name: str  # the other side's name, for conflict copies and messages
    os: str = "linux"  # the other side's OS ("linux", "darwin", "windows"): names are stored as it can hold them
    probe_os: bool = False  # a plain SSH server: learn ``os`` on connecting (a NOIZYLAB peer says it in ``Offer``)


class SftpConnection:
    """The connection and path spelling that both kinds of remote share; counts the bytes that travel."""

    def __init__(self, target: Target, client_key: bytes, index: ShareIndex) -> None:
        self.target = target
        self.name = target.name
        self._key = asyncssh.import_private_key(client_key)
        self._index = index
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._made_dirs: set[str] = set()
        self._spelled: dict[str, str] = {}  # wire path → how the other side spells it, where not the usual way

    async def sftp(self) -> asyncssh.SFTPClient:
        """The SFTP client, connecting first where there is none or the last one dropped."""
        async with self._lock:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            t = self.target
            known: object
            if t.host_key:
                known = ([asyncssh.import_public_key(t.host_key)], [], [])
            else:
                known = ()  # asyncssh's default: ~/.ssh/known_hosts
            try:
                kwargs: dict[str, object] = {} if known == () else {"known_hosts": known}
                self._conn = await asyncssh.connect(
                    t.host,
                    t.port,
                    username=t.username,
                    client_keys=[self._key],
                    agent_path=None,
                    encryption_algs=ciphers(),
                    compression_algs=None,
                    connect_timeout=10,
                    **kwargs,
                )
                self._sftp = await self._conn.start_sftp_client()
                if t.probe_os:
                    found = await probe_os(self._conn, self._sftp, t.root)
                    self.target = dataclasses.replace(t, os=found, probe_os=False)
            except (OSError, asyncssh.Error) as exc:
                raise RemoteUnreachable(f"cannot reach {t.name} over SFTP at {t.host}:{t.port}: {exc}") from exc
            return self._sftp

    @property
    def connected(self) -> bool:
        """False once a connection that was open has dropped (before the first connect it is True)."""
        return self._conn is None or not self._conn.is_closed()

    async def close(self) -> None:
        """Drop the connection; the next call connects afresh."""
        if self._conn is not None:
            conn, self._conn, self._sftp = self._conn, None, None
            self._made_dirs.clear()
            conn.close()
            await conn.wait_closed()

    @property
    def case_insensitive(self) -> bool:
        """Whether the other side's file names ignore case."""
        return case_insensitive(self.target.os)

    def stored(self, rel: str) -> str:
        """A wire path as the other side stores it (Windows-unsafe names encoded, NFD for macOS), or as the last
        listing found it spelled there (NFD names on a Linux server, for one)."""
        rel = check_rel(rel)
        if self._spelled:
            parts = rel.split("/")
            for i in range(len(parts), 0, -1):
                known = self._spelled.get("/".join(parts[:i]))
                if known is not None:
                    rest = "/".join(parts[i:])
                    return f"{known}/{encode_path(rest, self.target.os)}" if rest else known
        return encode_path(rel, self.target.os)

    def wire(self, stored: str) -> str:
        """A path as the other side stores it back to the wire form, remembering any other spelling."""
        rel = check_rel(decode_path(stored, self.target.os))
        try:
            usual = encode_path(rel, self.target.os)
        except SyncError:
            usual = ""
        if usual != stored:
            r_parts, s_parts = rel.split("/"), stored.split("/")
            for i in range(1, len(r_parts) + 1):
                if r_parts[:i] != s_parts[:i]:
                    self._spelled["/".join(r_parts[:i])] = "/".join(s_parts[:i])
        return rel

    def abs(self, rel: str) -> str:
        """The absolute SFTP path of a wire path."""
        return posixpath.join(self.target.root, self.stored(rel))
