"""The local side's writes, in one small class so tests can inject faults (a full disk) by subclassing it.

Every write lands in a temp file next to its final path, is fsynced, verified by hash, and only then renamed over
the final path; the file it replaces is hard-linked into the versions folder first, so no moment exists where
the final path is missing or half written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from noizylab_desktop.services.sync import fileio
from noizylab_desktop.services.sync.conflicts import version_name
from noizylab_desktop.services.sync.ignore import TEMP_PREFIX, TEMP_SUFFIX, VERSIONS_DIR
from noizylab_desktop.services.sync.index import Cached, ShareIndex
from noizylab_desktop.services.sync.names import check_rel, on_disk, resolve_inside
from noizylab_desktop.services.sync.planner import Entry
from noizylab_desktop.services.sync.writeback import DirectWrites

_UTIME_FD = os.utime in os.supports_fd
SmallFileList = list[tuple[str, bytes, bytes, int]]  # (path, data, SHA-256, mtime_ns)


def temp_name(rel: str) -> str:
    """The temp path for ``rel``: one per file and stable, so a retry resumes into whatever an earlier try left
    there (only blocks that differ travel, whichever version it held) and no stale temp piles up."""
    head, _, _ = rel.rpartition("/")
    token = hashlib.sha256(rel.encode()).hexdigest()[:16]
    name = f"{TEMP_PREFIX}{token}{TEMP_SUFFIX}"
    return f"{head}/{name}" if head else name


class LocalFs:
    """Writes inside one share's folder."""

    def __init__(self, root: Path, announce: Callable[[list[str]], None] | None = None) -> None:
        self.root = root
        # Told the absolute paths this share's own sync renamed into place (``landings.py``): the engine's writes
        # announce themselves; a served folder's writes for the peer that sent them do not.
        self.announce = announce
        self._real_root = ""  # the share's folder with links resolved, as the watchers told of landings hold it

    def landed(self, paths: list[str]) -> None:
        """Tell ``announce`` of files just renamed into place (absolute paths under ``root``), as real paths."""
        if self.announce is None or not paths:
            return
        if not self._real_root:
            self._real_root = os.path.realpath(self.root)
        root = str(self.root)
        self.announce([self._real_root + p[len(root) :] if p.startswith(root) else p for p in paths])

    def path(self, rel: str) -> Path:
        """``rel`` under the share's folder; refused (``UnsafePathError``) where a link would lead out of it."""
        check_rel(rel)
        if not rel.isascii():
            rel = on_disk(self.root, rel)
        parts = rel.split("/")
        here = str(self.root)
        for part in parts:  # one lstat per existing level: a full realpath only where a link is on the way
            here = f"{here}/{part}"
            try:
                if stat.S_ISLNK(os.lstat(here).st_mode):
                    return resolve_inside(self.root, rel)
            except (FileNotFoundError, NotADirectoryError):
                break  # what does not exist yet is made by us, as plain folders and files
        return self.root.joinpath(*parts)

    def copy(self, src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)

    def open_write(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | fileio.BINARY, 0o644)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = fileio.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written

    def direct(self, path: Path, chunk: int) -> DirectWrites | None:
        """Unbuffered writes of chunks up to ``chunk`` bytes into ``path`` where the OS and filesystem allow them
        (``writeback.py``); None: every write goes through ``pwrite``."""
        return DirectWrites.open(str(path), chunk)

    def close(self, fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def keep_version(self, rel: str) -> str | None:
        """Hard-link (else copy) the current ``rel`` into the versions folder; its path there, or None.

        Every caller replaces or removes ``rel`` next. A file another program holds open on Windows refuses that on
        every retry, and a version made each time could not even be removed again (a link to a held file is held
        too): such a file is refused here, before anything is made, with one line that says so."""
        src = self.path(rel)
        if not src.exists():
            return None
        if fileio.held_open(src):
            raise PermissionError(errno.EACCES, f"{rel} is open in another program that does not share it; retrying")
        now = time.time()
        for n in range(1, 1000):
            kept = version_name(rel, now, n)
            dst = self.path(kept)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except FileExistsError:
                continue
            except FileNotFoundError:
                return None
            except OSError:
                shutil.copy2(src, dst)
            return kept
        raise OSError(f"too many versions of {rel} this second")

    def drop_version(self, kept: str | None) -> None:
        """Remove a version ``keep_version`` just made, when the change it was kept for did not happen: a file that
        another process holds open on Windows refuses the rename on every retry, which would leave one more version
        each time."""
        if kept is not None:
            with contextlib.suppress(OSError):  # the failure that brought us here is the one worth reporting
                self.path(kept).unlink(missing_ok=True)

    def replace(self, src: Path, dst: Path, mtime_ns: int, keep: str | None = None) -> os.stat_result:
        """Rename ``src`` over ``dst`` with ``mtime_ns``; ``keep``: the file at that path is kept as a version first."""
        os.utime(src, ns=(mtime_ns, mtime_ns))
        dst.parent.mkdir(parents=True, exist_ok=True)
        kept = self.keep_version(keep) if keep is not None else None
        try:
            os.replace(src, dst)
        except OSError:
            self.drop_version(kept)
            raise
        self.landed([str(dst)])
        return os.stat(dst)

    def rename(self, src_rel: str, dst_rel: str) -> os.stat_result:
        dst = self.path(dst_rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(src_rel), dst)
        return os.stat(dst)

    def remove_to_versions(self, rel: str) -> None:
        kept = self.keep_version(rel)
        if kept is not None:
            try:
                self.path(rel).unlink(missing_ok=True)
            except OSError:
                self.drop_version(kept)
                raise


def prune_versions(root: Path, keep_s: float) -> int:
    """Delete kept versions older than ``keep_s`` seconds; returns how many went."""
    cutoff = time.time() - keep_s
    gone = 0
    base = root / VERSIONS_DIR
    for folder, _, files in os.walk(base):
        for name in files:
            p = Path(folder) / name
            try:
                if p.stat().st_mtime < cutoff and p.stat().st_ctime < cutoff:
                    p.unlink()
                    gone += 1
            except OSError:
                continue
    return gone


def _why(exc: OSError, root: Path) -> str:
    """One line for a file that could not be written."""
    if exc.errno == errno.ENOSPC:
        return f"disk full in {root}: free space there; the file is retried then"
    return exc.strerror or str(exc)


def write_files(
    root: Path,
    files: list[tuple[str, bytes, bytes, int]],
    index: ShareIndex | None = None,
    fs: LocalFs | None = None,
) -> dict[str, str]:
    """Small files (path, data, SHA-256, mtime) into the share at ``root``: each is checked against its hash and
    written to its temp file; one ``syncfs`` makes them all durable; then each replaces its final path (the old one
    kept as a version). With ``index`` (the serving side's scan cache) the files are recorded there in one
    transaction, so the next scan need not hash them again. ``fs`` writes the bytes (the engine's own, so its
    faults reach these writes too). Returns path → why for the ones that failed."""
    from noizylab_desktop.core.errors import NoizyLabError
    from noizylab_desktop.services.sync.blocks import Hashed, hash_bytes
    from noizylab_desktop.services.sync.names import check_rel, resolve_inside

    fs = fs or LocalFs(root)
    failed: dict[str, str] = {}
    ready: list[tuple[str, str, str, Hashed, os.stat_result, bool]] = []
    safe_dirs: set[str] = set()  # folders already checked (and made): one realpath per folder, not per file
    for rel, data, digest, mtime_ns in files:
        try:
            disk = rel if check_rel(rel).isascii() else on_disk(root, rel)  # a folder made on a Mac may be NFD
            head = disk.rpartition("/")[0]
            if head not in safe_dirs:
                folder = resolve_inside(root, head) if head else root
                folder.mkdir(parents=True, exist_ok=True)
                resolve_inside(root, head) if head else None  # again, now that it exists: no link out of the share
                safe_dirs.add(head)
            final = os.path.join(root, *disk.split("/"))
            try:
                existed = not stat.S_ISLNK(os.lstat(final).st_mode) or _refuse_link(rel)
            except FileNotFoundError:
                existed = False
            hashed = hash_bytes(data)
            if hashed.digest != digest:
                failed[rel] = "did not verify"
                continue
            tmp = os.path.join(os.path.dirname(final), temp_name(rel).rpartition("/")[2])  # named as LocalFs does
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | fileio.BINARY, 0o644)
            try:
                fs.pwrite(fd, data, 0)
                if not hasattr(os, "sync"):  # Windows: no whole-filesystem flush below, so each file is flushed
                    os.fsync(fd)
                if _UTIME_FD:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                    st = os.fstat(fd)  # the mtime as this file system keeps it, and the inode the rename keeps
            finally:
                os.close(fd)
            if not _UTIME_FD:  # Windows sets times by path only
                os.utime(tmp, ns=(mtime_ns, mtime_ns))
                st = os.stat(tmp)
            ready.append((rel, tmp, final, hashed, st, existed))
        except NoizyLabError as exc:
            failed[rel] = exc.message
        except OSError as exc:
            failed[rel] = _why(exc, root)
    if ready:
        _sync_fs(root)
    landed = []
    finals: list[str] = []
    for rel, tmp, final, hashed, st, existed in ready:
        try:
            kept = fs.keep_version(rel) if existed else None
            try:
                os.replace(tmp, final)
            except OSError:
                fs.drop_version(kept)
                raise
            landed.append(Cached(Entry(rel, st.st_size, st.st_mtime_ns, hashed.digest, hashed.blocks), st.st_ino))
            finals.append(final)
        except OSError as exc:
            failed[rel] = _why(exc, root)
    fs.landed(finals)
    if index is not None and landed:
        index.put_local(landed)
    return failed


def read_files(root: Path, rels: list[str], max_bytes: int) -> Iterator[tuple[SmallFileList, dict[str, str]]]:
    """Small files of the share at ``root`` with their SHA-256, in groups of at most ``max_bytes``; a file that
    cannot be read (gone meanwhile, or a link) is reported with why instead. Blocking: iterate in a thread."""
    from noizylab_desktop.core.errors import NoizyLabError
    from noizylab_desktop.services.sync.names import resolve_inside

    files: SmallFileList = []
    failed: dict[str, str] = {}
    size = 0
    for rel in rels:
        try:
            path = resolve_inside(root, rel)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | fileio.BINARY)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(f"{rel} is not a file")
                with os.fdopen(os.dup(fd), "rb") as f:
                    data = f.read()
            finally:
                os.close(fd)
        except NoizyLabError as exc:
            failed[rel] = exc.message
            continue
        except FileNotFoundError:
            failed[rel] = f"{rel} is gone"
            continue
        except OSError as exc:
            failed[rel] = exc.strerror or str(exc)
            continue
        if files and size + len(data) > max_bytes:
            yield files, failed
            files, failed, size = [], {}, 0
        files.append((rel, data, hashlib.sha256(data).digest(), st.st_mtime_ns))
        size += len(data)
    if files or failed:
        yield files, failed


def _refuse_link(rel: str) -> bool:
    raise OSError(f"{rel} is a link: links are not replaced")


def _sync_fs(root: Path) -> None:
    """Make every write under ``root`` durable: ``syncfs`` of its filesystem where there is one, else ``sync``;
    Windows has neither (each file was flushed as it was written)."""
    if not hasattr(os, "sync"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
