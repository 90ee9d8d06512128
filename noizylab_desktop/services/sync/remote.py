"""The other side of a share, over SFTP (asyncssh): a NOIZYLAB peer's embedded server, or any OpenSSH server.

Against a NOIZYLAB peer the listing with block hashes comes from its ``Sync.Index`` call and pushed temp files are
verified by its ``Sync.Hash``, so only changed blocks travel (reads at offsets; writes into a server-side copy made
with the ``copy-data`` extension). Against a plain SSH server whole files travel, the listing is an SFTP walk whose
changed files are hashed with ``sha256sum`` over SSH. Block sizes follow the server's ``limits@openssh.com`` reply
(asyncssh's ``block_size=-1``), so OpenSSH never gets a request over its 261,120-byte cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import posixpath
import shlex
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import asyncssh

from noizylab_desktop.core.errors import SyncError
from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, Hashed
from noizylab_desktop.services.sync.conflicts import version_name
from noizylab_desktop.services.sync.ignore import Ignore
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.names import case_insensitive, check_rel, decode_path, encode_path
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.receive import CHUNK, FileHeader
from noizylab_desktop.services.sync.sending import Outgoing
from noizylab_desktop.services.sync.ssh_os import probe_os
from noizylab_desktop.services.sync.ssh_resume import put_from, resume_point

logger = logging.getLogger(__name__)

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


IndexSource = Callable[[], AsyncIterator[list[Entry]]]
HashSource = Callable[[str], Awaitable[tuple[bytes, bytes]]]  # rel → (digest, block hashes)
SmallFiles = list[tuple[str, bytes, bytes, int]]  # (path, data, SHA-256, mtime_ns)
PutSource = Callable[[SmallFiles], Awaitable[dict[str, str]]]  # → path: why it failed
GetSource = Callable[[list[str]], AsyncIterator[tuple[SmallFiles, dict[str, str]]]]  # files, path → why not
# A whole file, streamed → (digest, block hashes) as the peer received them.
SendSource = Callable[[FileHeader, AsyncIterator[tuple[int, bytes]]], Awaitable[tuple[bytes, bytes]]]

StreamSource = Callable[[str, int], AsyncIterator[tuple[int, bytes]]]  # a whole file from an offset, streamed


class ChangedWhileSent(SyncError):
    """A file hashed while it was sent changed meanwhile: the peer discarded it and the next pass sends it again."""


class RemoteUnreachable(SyncError):
    """The other side cannot be reached (or the connection dropped): the whole pass stops and retries later."""


class Remote:
    """One SFTP connection to a share's other side; reconnects on the next call after a drop."""

    def __init__(
        self,
        target: Target,
        client_key: bytes,
        index: ShareIndex,
        peer_index: IndexSource | None = None,
        peer_hash: HashSource | None = None,
        peer_put: PutSource | None = None,
        peer_send: SendSource | None = None,
        peer_get: GetSource | None = None,
        peer_stream: StreamSource | None = None,
    ) -> None:
        self.target = target
        self.name = target.name
        self._key = asyncssh.import_private_key(client_key)
        self._index = index
        self._peer_index = peer_index
        self._peer_hash = peer_hash
        self.peer_put = peer_put
        self.peer_send = peer_send
        self.peer_get = peer_get
        self.peer_stream = peer_stream
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._made_dirs: set[str] = set()
        self._spelled: dict[str, str] = {}  # wire path → how the other side spells it, where not the usual way

    @property
    def block_level(self) -> bool:
        """True against a NOIZYLAB peer (block deltas), False against a plain SSH server (whole files)."""
        return self._peer_index is not None

    async def sftp(self) -> asyncssh.SFTPClient:
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
        if self._conn is not None:
            conn, self._conn, self._sftp = self._conn, None, None
            self._made_dirs.clear()
            conn.close()
            await conn.wait_closed()

    @property
    def case_insensitive(self) -> bool:
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
        return posixpath.join(self.target.root, self.stored(rel))

    # ------------------------------------------------------------------ listing

    async def listing(self) -> dict[str, Entry]:
        """Every file on the other side with its hash."""
        self._spelled.clear()
        if self._peer_index is not None:
            found: dict[str, Entry] = {}
            async for batch in self._peer_index():
                for e in batch:
                    rel = self.wire(e.path)
                    found[rel] = e if rel == e.path else dataclasses.replace(e, path=rel)
            return found
        return await self._walk_and_hash()

    async def _walk_and_hash(self) -> dict[str, Entry]:
        sftp = await self.sftp()
        cache = self._index.remote_cache()
        stats: dict[str, tuple[int, int]] = {}
        ignore_lines: list[str] = []
        try:
            async with sftp.open(self.abs(".nzignore"), "rb") as f:
                ignore_lines = cast(bytes, await f.read()).decode("utf-8", "replace").splitlines()
        except (asyncssh.SFTPError, OSError):
            pass
        ignore = Ignore(ignore_lines)

        async def walk(rel_dir: str) -> None:
            folder = posixpath.join(self.target.root, rel_dir) if rel_dir else self.target.root
            async for item in sftp.scandir(folder):
                name = str(item.filename)
                if name in (".", ".."):
                    continue
                stored = f"{rel_dir}/{name}" if rel_dir else name
                rel = self.wire(stored)
                kind = item.attrs.type
                if kind == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    if not ignore.ignored(rel, is_dir=True):
                        await walk(stored)
                elif kind == asyncssh.FILEXFER_TYPE_REGULAR and not ignore.ignored(rel):
                    mtime_ns = (
                        int(item.attrs.mtime or 0) * 1_000_000_000 + int(item.attrs.mtime_ns or 0) % 1_000_000_000
                    )
                    stats[rel] = (int(item.attrs.size or 0), mtime_ns)

        try:
            await walk("")
        except asyncssh.SFTPNoSuchFile as exc:
            raise SyncError(
                f"the folder {self.target.root} on {self.name} is gone: create it or remove the share"
            ) from exc
        stale = [
            p
            for p, (size, mtime) in stats.items()
            if p not in cache or (cache[p].size, cache[p].mtime_ns) != (size, mtime)
        ]
        hashes = await self._remote_hashes(stale)
        fresh = [Entry(p, stats[p][0], stats[p][1], hashes[p]) for p in stale if p in hashes]
        self._index.put_remote(fresh, [p for p in cache if p not in stats])
        result = {p: cache[p] for p in stats if p in cache and p not in hashes}
        result.update({e.path: e for e in fresh})
        return result

    async def _remote_hashes(self, rels: list[str]) -> dict[str, bytes]:
        """SHA-256 of remote files: ``sha256sum`` over SSH in batches, else by reading them."""
        found: dict[str, bytes] = {}
        if not rels:
            return found
        assert self._conn is not None
        for i in range(0, len(rels), 200):
            batch = rels[i : i + 200]
            cmd = "sha256sum -b -- " + " ".join(shlex.quote(self.abs(r)) for r in batch)
            try:
                result = await self._conn.run(cmd, check=False, timeout=300)
            except (TimeoutError, asyncssh.Error, OSError):
                result = None
            lines = str(result.stdout or "").splitlines() if result is not None else []
            for rel, line in zip(batch, lines, strict=False):
                digest = line.split(" ", 1)[0]
                if len(digest) == 64 and line.endswith(self.abs(rel)):
                    found[rel] = bytes.fromhex(digest)
        for rel in rels:
            if rel not in found:
                try:
                    found[rel] = await self._read_hash(self.abs(rel))
                except (asyncssh.SFTPError, OSError):
                    continue  # vanished or unreadable: the next scan sees it
        return found

    async def _read_hash(self, path: str) -> bytes:
        sftp = await self.sftp()
        h = hashlib.sha256()
        async with sftp.open(path, "rb", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
            while chunk := cast(bytes, await f.read(4 * 1024 * 1024)):
                h.update(chunk)
                self.bytes_received += len(chunk)
        return h.digest()

    async def hash_of(self, rel: str) -> bytes:
        """The whole-file hash of a remote file (a pushed temp file, before it is made visible)."""
        if self._peer_hash is not None:
            return (await self._peer_hash(self.stored(rel)))[0]
        return (await self._remote_hashes([rel]))[rel]

    async def blocks_of(self, rel: str) -> bytes | None:
        """Block hashes of a remote file (a temp file left by an interrupted push), or None where unknown."""
        if self._peer_hash is None or not await self.exists(rel):
            return None
        return (await self._peer_hash(self.stored(rel)))[1]

    # ------------------------------------------------------------------ content

    async def stream(self, rel: str, start: int = 0, chunk: int = 16 * 1024 * 1024) -> AsyncIterator[tuple[int, bytes]]:
        """The remote file from ``start`` on, in large chunks: over the peer's gRPC stream between NOIZYLAB nodes,
        else over SFTP (asyncssh splits each chunk into parallel reads)."""
        if self.peer_stream is not None:
            async for offset, data in self.peer_stream(self.stored(rel), start):
                self.bytes_received += len(data)
                yield offset, data
            return
        sftp = await self.sftp()
        async with sftp.open(self.abs(rel), "rb", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
            offset = start
            while data := cast(bytes, await f.read(chunk, offset)):
                self.bytes_received += len(data)
                yield offset, data
                offset += len(data)

    async def read_ranges(self, rel: str, offsets: list[int], size: int = BLOCK_SIZE) -> list[bytes]:
        """Blocks of a remote file, read in parallel."""
        sftp = await self.sftp()
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)
        async with sftp.open(self.abs(rel), "rb") as f:

            async def one(offset: int) -> bytes:
                async with gate:
                    return cast(bytes, await f.read(size, offset))

            blocks = await asyncio.gather(*(one(o) for o in offsets))
        self.bytes_received += sum(len(b) for b in blocks)
        return blocks

    async def upload(self, local: Path, rel: str) -> None:
        """``local`` into the remote file ``rel`` (a temp name), whole; against a plain SSH server, a temp file left
        there by an interrupted push is resumed from its last full block once that prefix checks out by hash."""
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(rel))
        size = local.stat().st_size
        start = (
            0 if self.block_level or self._conn is None else await resume_point(sftp, self._conn, self.abs(rel), local)
        )
        if start:
            logger.info("resuming the push of %s to %s at %d of %d bytes", rel, self.name, start, size)
            self.bytes_sent += await put_from(sftp, self.abs(rel), local, start)
            return
        await sftp.put(local, self.abs(rel), block_size=-1, max_requests=PARALLEL_REQUESTS)
        self.bytes_sent += size

    async def put_files(self, files: SmallFiles) -> dict[str, str]:
        """Many small files in one call to a NOIZYLAB peer (it checks each hash, then renames into place)."""
        assert self.peer_put is not None
        failed: dict[str, str] = {}
        wire: dict[str, str] = {}
        sending: SmallFiles = []
        for path, data, digest, mtime_ns in files:
            try:
                wire[self.stored(path)] = path
            except SyncError as exc:  # a name the other side cannot hold: that file fails, the rest go
                failed[path] = exc.message
                continue
            sending.append((self.stored(path), data, digest, mtime_ns))
        if sending:
            for stored, why in (await self.peer_put(sending)).items():
                failed[wire.get(stored, stored)] = why
        self.bytes_sent += sum(len(f[1]) for f in sending)
        return failed

    async def get_files(self, rels: list[str]) -> AsyncIterator[tuple[SmallFiles, dict[str, str]]]:
        """Many small files from a NOIZYLAB peer in one call, in groups as they arrive, with those it could not read."""
        assert self.peer_get is not None
        wire = {self.stored(rel): rel for rel in rels}  # the peer's names (encoded for its OS) → ours
        async for files, failed in self.peer_get(list(wire)):
            self.bytes_received += sum(len(f[1]) for f in files)
            yield (
                [(wire.get(p, p), data, digest, mtime) for p, data, digest, mtime in files],
                {wire.get(p, p): why for p, why in failed.items()},
            )

    async def send_file(self, local: Path, rel: str, have: Entry, keep_version: bool) -> Hashed:
        """The whole local file to a NOIZYLAB peer over its gRPC stream; the peer verifies and renames it. Without a
        hash in ``have`` the file is hashed as it is read (``sending.py``); ``ChangedWhileSent`` when it changed."""
        assert self.peer_send is not None
        header = FileHeader(self.stored(rel), have.size, have.hash, have.mtime_ns, keep_version)
        if not have.hash:
            out = Outgoing(local, have)
            try:
                digest, blocks = await self.peer_send(header, out.chunks())
            except SyncError:
                if out.changed:
                    raise ChangedWhileSent(f"{rel} changed while it was sent") from None
                raise
            finally:
                self.bytes_sent += out.sent
            if digest != out.digest:
                raise SyncError(f"{rel} did not verify on {self.name}; retrying")
            return Hashed(have.size, digest, blocks)

        async def chunks() -> AsyncIterator[tuple[int, bytes]]:
            with open(local, "rb") as f:
                offset = 0
                # Several chunks per worker-thread hop: fewer hops, and reading stays ahead of the network.
                while batch := await asyncio.to_thread(_read_chunks, f, 4):
                    for data in batch:
                        yield offset, data
                        offset += len(data)
                        self.bytes_sent += len(data)

        digest, blocks = await self.peer_send(header, chunks())
        return Hashed(have.size, digest, blocks)

    async def write_small(self, rel: str, data: bytes) -> None:
        """``data`` into the remote file ``rel`` (a temp name) in one open, write, close."""
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(rel))
        async with sftp.open(self.abs(rel), "wb", block_size=-1, max_requests=PARALLEL_REQUESTS) as f:
            await f.write(data)
        self.bytes_sent += len(data)

    async def upload_delta(self, local: Path, base_rel: str, rel: str, blocks: list[int], size: int) -> bool:
        """``rel`` = server-side copy of ``base_rel`` (or ``rel`` itself, resuming) + the given blocks of ``local``."""
        sftp = await self.sftp()
        if base_rel != rel:
            try:
                await sftp.remote_copy(self.abs(base_rel), self.abs(rel))
            except (asyncssh.SFTPOpUnsupported, asyncssh.SFTPNoSuchFile):
                return False
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)
        fd = os.open(local, os.O_RDONLY)
        try:
            async with sftp.open(self.abs(rel), "r+b") as f:

                async def one(i: int) -> None:
                    async with gate:
                        data = os.pread(fd, BLOCK_SIZE, i * BLOCK_SIZE)
                        await f.write(data, i * BLOCK_SIZE)
                        self.bytes_sent += len(data)

                await asyncio.gather(*(one(i) for i in blocks))
                await f.truncate(size)
        finally:
            os.close(fd)
        return True

    async def finish(self, tmp_rel: str, rel: str, mtime_ns: int) -> None:
        """Set the mtime of a verified temp file and rename it over ``rel`` atomically."""
        sftp = await self.sftp()
        seconds = mtime_ns / 1e9
        ns = mtime_ns % 1_000_000_000
        attrs = asyncssh.SFTPAttrs(atime=int(seconds), atime_ns=ns, mtime=int(seconds), mtime_ns=ns)
        await sftp.setstat(self.abs(tmp_rel), attrs)
        await sftp.posix_rename(self.abs(tmp_rel), self.abs(rel))

    async def rename(self, src: str, dst: str) -> None:
        sftp = await self.sftp()
        await self.makedirs(posixpath.dirname(dst))
        await sftp.posix_rename(self.abs(src), self.abs(dst))

    async def keep_version(self, rel: str) -> None:
        """Keep the current ``rel`` in the versions folder (a hard link, else a server-side copy) before it goes."""
        sftp = await self.sftp()
        now = time.time()
        for n in range(1, 1000):
            kept = version_name(rel, now, n)
            if await sftp.exists(self.abs(kept)):
                continue
            await self.makedirs(posixpath.dirname(kept))
            try:
                await sftp.link(self.abs(rel), self.abs(kept))
            except asyncssh.SFTPNoSuchFile:
                return
            except asyncssh.SFTPError:
                await sftp.remote_copy(self.abs(rel), self.abs(kept))
            return

    async def remove(self, rel: str) -> None:
        sftp = await self.sftp()
        try:
            await sftp.remove(self.abs(rel))
        except asyncssh.SFTPNoSuchFile:
            pass

    async def makedirs(self, rel_dir: str) -> None:
        if not rel_dir or rel_dir in self._made_dirs:
            return
        sftp = await self.sftp()
        await sftp.makedirs(self.abs(rel_dir), exist_ok=True)
        self._made_dirs.add(rel_dir)  # remembered for this connection: one round trip per folder, not per file

    async def exists(self, rel: str) -> bool:
        sftp = await self.sftp()
        try:
            return stat.S_ISREG((await sftp.stat(self.abs(rel))).permissions or 0)
        except asyncssh.SFTPNoSuchFile:
            return False


def _read_chunks(f: BinaryIO, count: int) -> list[bytes]:
    """Up to ``count`` chunks of a file opened for reading; empty at its end."""
    out = []
    for _ in range(count):
        data = f.read(CHUNK)
        if not data:
            break
        out.append(data)
    return out
