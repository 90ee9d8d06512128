"""The node's embedded SFTP server (asyncssh): only paired peers' Ed25519 keys get in, only while the peer is
allowed ``sync``, and each sees nothing but the folders it offered: ``/<share_id>/...`` maps into that share's
folder, ``..`` is refused, links that lead out of a share are refused, and no symlink can be made.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh

from noizylab_desktop.errors import SyncError
from noizylab_desktop.services.sync.names import resolve_inside

logger = logging.getLogger(__name__)

KeyLookup = Callable[[str], bytes | None]  # "ssh-ed25519 AAAA..." → allowed peer fingerprint, or None
RootLookup = Callable[[bytes], dict[str, Path]]  # peer fingerprint → {share_id: folder}


def _key_id(line: str) -> str:
    parts = line.split()
    return " ".join(parts[:2]) if len(parts) >= 2 else line


class _Auth(asyncssh.SSHServer):
    def __init__(self, lookup: KeyLookup) -> None:
        self._lookup = lookup
        self.peer_fp: bytes | None = None

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if key.algorithm != b"ssh-ed25519":
            return False
        fp = self._lookup(_key_id(key.export_public_key("openssh").decode()))
        if fp is None:
            logger.info("SFTP: refused a key that belongs to no peer allowed to sync")
            return False
        self.peer_fp = fp
        return True


class ShareSftp(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], roots: RootLookup) -> None:
        owner = chan.get_connection().get_owner()
        fp = owner.peer_fp if isinstance(owner, _Auth) else None
        self._roots = roots(fp) if fp is not None else {}
        super().__init__(chan)

    def map_path(self, path: bytes) -> bytes:
        text = os.fsdecode(path)
        parts = [p for p in text.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise asyncssh.SFTPPermissionDenied("paths with .. are refused")
        if not parts or parts[0] not in self._roots:
            raise asyncssh.SFTPPermissionDenied("no such share for this peer")
        root = self._roots[parts[0]]
        if len(parts) == 1:
            return os.fsencode(root)
        try:
            return os.fsencode(resolve_inside(root, "/".join(parts[1:])))
        except SyncError as exc:
            raise asyncssh.SFTPPermissionDenied(exc.message) from exc

    def reverse_map_path(self, path: bytes) -> bytes:
        text = os.fsdecode(path)
        for share_id, root in self._roots.items():
            base = str(root)
            if text == base or text.startswith(base.rstrip("/") + "/"):
                return os.fsencode(posixpath.join("/" + share_id, text[len(base) :].lstrip("/")).rstrip("/"))
        raise asyncssh.SFTPPermissionDenied("outside every share")

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        """Entries without ``.`` and ``..``: asyncssh would stat ``folder/..``, which ``map_path`` refuses."""
        with os.scandir(self.map_path(path)) as entries:
            for entry in entries:
                attrs = asyncssh.SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                yield asyncssh.SFTPName(os.fsencode(entry.name), attrs=attrs)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("symlinks cannot be made in a share")


class SftpServer:
    """Listens while the node runs."""

    sftp_class: type[ShareSftp] = ShareSftp  # tests put a case-insensitive filesystem (as on Windows) behind it

    def __init__(self, host_key_pem: bytes, keys: KeyLookup, roots: RootLookup) -> None:
        self._host_key = asyncssh.import_private_key(host_key_pem)
        self._keys = keys
        self._roots = roots
        self._server: asyncssh.SSHAcceptor | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        try:
            self._server = await asyncssh.listen(
                host or None,
                port,
                server_factory=lambda: _Auth(self._keys),
                server_host_keys=[self._host_key],
                sftp_factory=lambda chan: self.sftp_class(chan, self._roots),
                allow_scp=False,
                agent_forwarding=False,
                allow_pty=False,
                x11_forwarding=False,
                encryption_algs=["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"],
            )
        except OSError as exc:
            raise SyncError(
                f"cannot listen for SFTP on {host}:{port}: the port is in use; choose another with --sftp-port"
            ) from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
