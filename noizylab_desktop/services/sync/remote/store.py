"""What the engine and executor need of a share's other side (``RemoteStore``), what a NOIZYLAB peer adds to it
(``PeerStore``: block deltas and its batched and streamed calls), and how a remote fails.

``SshRemote`` (any SFTP server) is a ``RemoteStore``; ``PeerRemote`` (a paired node) is a ``PeerStore``. The
executor asks ``isinstance(remote, PeerStore)`` where the two differ, as Go code asks for an interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, Hashed
from noizylab_desktop.services.sync.planner import Entry

SmallFiles = list[tuple[str, bytes, bytes, int]]  # (path, data, SHA-256, mtime_ns)
STREAM_CHUNK = 16 * 1024 * 1024  # a whole file streamed over SFTP: asyncssh splits each chunk into parallel reads


class ChangedWhileSent(SyncError):
    """A file hashed while it was sent changed meanwhile: the peer discarded it and the next pass sends it again."""


class RemoteUnreachable(SyncError):
    """The other side cannot be reached (or the connection dropped): the whole pass stops and retries later."""


class RemoteStore(Protocol):
    """A share's other side. Paths are wire paths: ``/``-separated, relative to the share, as this side names them;
    the remote stores them as the other side's OS can hold them (``stored``)."""

    name: str  # the other side's name, for conflict copies and messages
    bytes_sent: int
    bytes_received: int

    @property
    def connected(self) -> bool:
        """False once a connection that was open has dropped (before the first connect it is True)."""

    @property
    def case_insensitive(self) -> bool:
        """Whether the other side's file names ignore case (two names differing only in case clash there)."""

    @property
    def block_level(self) -> bool:
        """Whether listings carry block hashes, so only changed blocks need travel."""

    def stored(self, rel: str) -> str:
        """``rel`` as the other side stores it; ``SyncError`` for a name it cannot hold."""

    async def close(self) -> None:
        """Drop the connection; the next call connects afresh."""

    async def listing(self) -> dict[str, Entry]:
        """Every file on the other side with its hash."""

    async def hash_of(self, rel: str) -> bytes:
        """The whole-file hash of a remote file (a pushed temp file, before it is made visible)."""

    def stream(self, rel: str, start: int = 0, chunk: int = STREAM_CHUNK) -> AsyncIterator[tuple[int, bytes]]:
        """The remote file from ``start`` on, as (offset, data) in large chunks."""

    async def upload(self, local: Path, rel: str) -> None:
        """``local`` into the remote file ``rel`` (a temp name), whole."""

    async def write_small(self, rel: str, data: bytes) -> None:
        """``data`` into the remote file ``rel`` (a temp name) in one open, write, close."""

    async def finish(self, tmp_rel: str, rel: str, mtime_ns: int) -> None:
        """Set the mtime of a verified temp file and rename it over ``rel`` atomically."""

    async def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, making ``dst``'s folder where needed."""

    async def keep_version(self, rel: str) -> None:
        """Keep the current ``rel`` in the versions folder before it is replaced or goes."""

    async def remove(self, rel: str) -> None:
        """Remove ``rel``; one already gone is no error."""

    async def exists(self, rel: str) -> bool:
        """Whether ``rel`` is a regular file there."""


@runtime_checkable
class PeerStore(RemoteStore, Protocol):
    """A paired NOIZYLAB node: block deltas over its SFTP, and its own calls for batches of small files and for
    whole files streamed (checked by hash on arrival)."""

    batch_puts: bool  # small pushes many to a call (else one SFTP write each)
    stream_pulls: bool  # large pulls with nothing to build on over the peer's stream (else over SFTP)

    async def blocks_of(self, rel: str) -> bytes | None:
        """Block hashes of a remote file (a temp file left by an interrupted push), or None where it is absent."""

    async def read_ranges(self, rel: str, offsets: list[int], size: int = BLOCK_SIZE) -> list[bytes]:
        """Blocks of a remote file, read in parallel."""

    async def upload_delta(self, local: Path, base_rel: str, rel: str, blocks: list[int], size: int) -> bool:
        """``rel`` = server-side copy of ``base_rel`` (or ``rel`` itself) + the given blocks of ``local``; False
        where the copy cannot be made."""

    async def put_files(self, files: SmallFiles) -> dict[str, str]:
        """Many small files in one call; returns path → why it failed."""

    def get_files(self, rels: list[str]) -> AsyncIterator[tuple[SmallFiles, dict[str, str]]]:
        """Many small files in one call, in groups as they arrive, with those the peer could not read."""

    async def send_file(self, local: Path, rel: str, have: Entry, keep_version: bool) -> Hashed:
        """The whole local file over the peer's stream; the peer verifies it and renames it into place."""
