"""The node's embedded SFTP server (asyncssh): only paired peers' Ed25519 keys get in, only while the peer is
allowed ``sync``, and each sees nothing but the folders it offered: ``/<share_id>/...`` maps into that share's
folder, ``..`` is refused, links that lead out of a share are refused, and no link can be made.

- Each SSH connection is a session of its peer (``services/sessions.py``): unpairing the peer, or denying it
  ``sync``, disconnects it at once. Every operation also asks again whether the peer may still sync.
- A peer makes only regular files and folders, with no setuid, setgid or sticky bit and no change of owner
  (``open``, ``mkdir``, ``setstat`` and their kin strip them); it opens only regular files.
"""

from __future__ import annotations

import copy
import inspect
import io
import logging
import os
import posixpath
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, cast

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.core.sessions import Ending, Session, Sessions
from noizylab_desktop.services.sync.names import resolve_inside

logger = logging.getLogger(__name__)

SCOPE = "sync"
PLAIN_MODE = 0o777  # the permission bits a peer may set: setuid, setgid and sticky are stripped


class PeerAccess(Protocol):
    """What the server asks about peers (the share manager answers)."""

    def key_owner(self, key: str) -> bytes | None:
        """``"ssh-ed25519 AAAA..."`` → the fingerprint of the paired peer holding it that may sync, else None."""

    def roots_for(self, fp: bytes) -> dict[str, Path]:
        """The peer's shares: ``{share_id: folder}``."""

    def may_sync(self, fp: bytes) -> bool:
        """Whether the peer is still paired and allowed ``sync``."""


def _key_id(line: str) -> str:
    parts = line.split()
    return " ".join(parts[:2]) if len(parts) >= 2 else line


def plain_attrs(attrs: asyncssh.SFTPAttrs) -> asyncssh.SFTPAttrs:
    """``attrs`` without setuid, setgid and sticky bits and without an owner or group: what a peer may set."""
    plain = copy.copy(attrs)
    if plain.permissions is not None:
        plain.permissions &= PLAIN_MODE
    plain.uid = plain.gid = None
    plain.owner = plain.group = None
    return plain


class _Auth(asyncssh.SSHServer):
    """One connection: lets in a peer's key, and holds the connection as that peer's session."""

    def __init__(self, peers: PeerAccess, sessions: Sessions) -> None:
        self._peers = peers
        self._sessions = sessions
        self._conn: asyncssh.SSHServerConnection | None = None
        self._session: Session | None = None
        self.peer_fp: bytes | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session is not None:
            self._sessions.close(self._session)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if key.algorithm != b"ssh-ed25519":
            return False
        fp = self._peers.key_owner(_key_id(key.export_public_key("openssh").decode()))
        if fp is None:
            logger.info("SFTP: refused a key that belongs to no peer allowed to sync")
            return False
        self.peer_fp = fp
        # Held from the moment a key is accepted, so a deny before the first channel still ends the connection; a
        # client that offers one peer's key and then logs in with another's is held as the second peer's.
        if self._session is None or self._session.fp != fp:
            if self._session is not None:
                self._sessions.close(self._session)
            self._session = self._sessions.open(fp, "SSH connection", self._end, (SCOPE,))
        return True

    def _end(self, ending: Ending) -> None:
        logger.info("SFTP: closed a peer's connection: %s", ending.message)
        if self._conn is not None:
            self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, ending.message)


class ShareSftp(asyncssh.SFTPServer):
    """One SFTP channel of a peer. Every path goes through ``map_path``, and every operation on an open handle
    through ``_still_allowed``, so each asks again whether the peer may sync."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], peers: PeerAccess) -> None:
        owner = chan.get_connection().get_owner()
        self._peers = peers
        self._fp = owner.peer_fp if isinstance(owner, _Auth) else None
        self._roots = peers.roots_for(self._fp) if self._fp is not None and peers.may_sync(self._fp) else {}
        super().__init__(chan)

    def _still_allowed(self) -> None:
        if self._fp is None or not self._peers.may_sync(self._fp):
            raise asyncssh.SFTPPermissionDenied(Ending(SCOPE).message)

    def map_path(self, path: bytes) -> bytes:
        self._still_allowed()
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

    # ------------------------------------------------------------------ files: regular ones only, plain modes

    def _not_special(self, path: bytes) -> None:
        # Before opening: a FIFO would block the node's loop in open() until someone wrote to it.
        try:
            st = os.stat(self.map_path(path))
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise asyncssh.SFTPPermissionDenied("only regular files can be opened in a share")

    def _regular(self, opened: object) -> object:
        # After opening, on the handle itself: what was checked by name may have been swapped meanwhile.
        assert not inspect.isawaitable(opened), "ShareSftp opens files synchronously"
        file_obj = cast(io.FileIO, opened)
        if not stat.S_ISREG(os.fstat(file_obj.fileno()).st_mode):
            file_obj.close()
            raise asyncssh.SFTPPermissionDenied("only regular files can be opened in a share")
        return file_obj

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        self._not_special(path)
        return self._regular(super().open(path, pflags, plain_attrs(attrs)))

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> object:
        self._not_special(path)
        return self._regular(super().open56(path, desired_access, flags, plain_attrs(attrs)))

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        super().mkdir(path, plain_attrs(attrs))

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        super().setstat(path, plain_attrs(attrs))

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        super().lsetstat(path, plain_attrs(attrs))

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        self._still_allowed()
        super().fsetstat(file_obj, plain_attrs(attrs))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links cannot be made in a share")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        # A hard link would give one file two names (in two shares, even) that sync then treats as two files.
        raise asyncssh.SFTPPermissionDenied("links cannot be made in a share")

    # ------------------------------------------------------------------ open handles ask again too

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        self._still_allowed()
        return cast(bytes, super().read(file_obj, offset, size))

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        self._still_allowed()
        return cast(int, super().write(file_obj, offset, data))

    def fstat(self, file_obj: object) -> os.stat_result:
        self._still_allowed()
        return cast(os.stat_result, super().fstat(file_obj))

    def fsync(self, file_obj: object) -> None:
        self._still_allowed()
        super().fsync(file_obj)

    def fstatvfs(self, file_obj: object) -> os.statvfs_result:
        self._still_allowed()
        return cast(os.statvfs_result, super().fstatvfs(file_obj))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        """Entries without ``.`` and ``..``: asyncssh would stat ``folder/..``, which ``map_path`` refuses."""
        with os.scandir(self.map_path(path)) as entries:
            for entry in entries:
                self._still_allowed()  # an open listing is read in batches: each asks again
                attrs = asyncssh.SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                yield asyncssh.SFTPName(os.fsencode(entry.name), attrs=attrs)


class SftpServer:
    """Listens while the node runs."""

    sftp_class: type[ShareSftp] = ShareSftp  # tests put a case-insensitive filesystem (as on Windows) behind it

    def __init__(self, host_key_pem: bytes, peers: PeerAccess, sessions: Sessions) -> None:
        self._host_key = asyncssh.import_private_key(host_key_pem)
        self._peers = peers
        self._sessions = sessions
        self._server: asyncssh.SSHAcceptor | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        try:
            self._server = await asyncssh.listen(
                host or None,
                port,
                server_factory=lambda: _Auth(self._peers, self._sessions),
                server_host_keys=[self._host_key],
                sftp_factory=lambda chan: self.sftp_class(chan, self._peers),
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
