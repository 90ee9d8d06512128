"""Folder sync's rules where Windows differs from Linux, between a Linux node and a real Windows node (its filesystem
is Wine's, case-insensitive and case-preserving as NTFS is; its locks are Windows' share modes).

- Case: two names on Linux that differ only in case cannot both live on Windows. Neither clobbers the other: both are
  left as they are, with a per-file error that names both (docs/sync.md, "Names"), until one is renamed. A case-only
  rename travels as a rename.
- A file another Windows process holds open without sharing (as Office and many editors do): the sync neither crashes
  nor loses an edit; the file gets a per-file error that says it is retried, the other files go on, and once the lock
  is gone the file syncs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from tests.conftest import NodeProcess, wait_for
from tests.windows.conftest import WINE_DIFFERENCE, LinuxNode, pair, under_wine

# A separate Windows process that opens a file with no sharing at all (dwShareMode 0) and holds it until its stdin
# closes: other processes can then neither read, write, rename over nor delete it (ERROR_SHARING_VIOLATION). Given
# content (hex), it creates the file under that lock and writes it, so no one ever sees the file unlocked.
LOCKER = r"""
import ctypes, sys
from ctypes import wintypes
k = ctypes.WinDLL("kernel32", use_last_error=True)
k.CreateFileW.restype = wintypes.HANDLE
k.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD,
                          wintypes.DWORD, wintypes.HANDLE]
create = len(sys.argv) > 2
h = k.CreateFileW(sys.argv[1], 0x80000000 | 0x40000000, 0, None, 1 if create else 3, 0x80, None)
if h == wintypes.HANDLE(-1).value:
    print("failed", ctypes.get_last_error(), flush=True)
    sys.exit(1)
if create:
    data = bytes.fromhex(sys.argv[2])
    done = wintypes.DWORD()
    assert k.WriteFile(h, data, len(data), ctypes.byref(done), None) and done.value == len(data)
print("locked", flush=True)
sys.stdin.read()
k.CloseHandle(h)
"""


@contextmanager
def locked(path: Path, create: bytes | None = None) -> Iterator[None]:
    """``path`` held open by another process with no sharing, for the length of the ``with`` block; made with the
    bytes ``create`` under the lock when given."""
    extra = [] if create is None else [create.hex()]
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        said = holder.stdout.readline().strip()
        assert said == "locked", f"the locking process said {said!r}"
        try:
            path.read_bytes()
        except PermissionError:
            pass
        else:
            raise AssertionError(f"{path} is readable while another process holds it without sharing")
        yield
    finally:
        holder.communicate(timeout=30)  # closes its stdin: the lock goes


def tree(root: Path) -> dict[str, bytes]:
    """The synced files under ``root`` (no temp files, no versions), read while the sync may still be writing."""
    found = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if rel.parts[0].startswith(".nz") or p.name.startswith(".nz"):
            continue
        try:
            found[rel.as_posix()] = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError, PermissionError):  # gone meanwhile, a folder, or locked
            continue
    return found


def paired(omen: NodeProcess, linux: LinuxNode) -> None:
    pair(omen, linux)
    omen.cli("allow", linux.name, "sync")
    linux.cli("allow", omen.name, "sync")


def one_status(node: NodeProcess) -> dict[str, str]:
    (status,) = node.json("sync", "status")
    return {"state": str(status["state"]), "message": str(status["message"])}


def status_saying(node: NodeProcess, words: str, what: str) -> dict[str, str]:
    """``node``'s share status once its message holds ``words``; on timeout the error says what it held."""
    try:
        found: dict[str, str] = wait_for(
            lambda: status if words in (status := one_status(node))["message"] else None, timeout=60, what=what
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {node.name} says {one_status(node)}") from None
    return found


def linux_tree(linux: LinuxNode, folder: str) -> dict[str, bytes]:
    """The visible files of a folder on the Linux host (one gone between listing and reading is left out)."""
    names = [n for n in linux.agent.call("list", path=folder)["names"] if not n.startswith(".nz")]
    read = {n: linux.agent.call("read", path=f"{folder}/{n}")["data"] for n in names}
    return {n: bytes.fromhex(data) for n, data in read.items() if data is not None}


def linux_write(linux: LinuxNode, path: str, data: bytes) -> None:
    linux.agent.call("write", path=path, data=data.hex())


def test_names_that_differ_only_in_case_on_linux_are_held_apart_not_clobbered_on_windows(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode], tmp_path: Path
) -> None:
    omen = make_node("omen", sync={"folder": str(tmp_path / "omen-sync")}).start()
    linux = make_linux_node("penguin").start()
    paired(omen, linux)
    work = f"{linux.linux_home}-work"
    linux_write(linux, f"{work}/README.md", b"upper")
    linux_write(linux, f"{work}/Readme.md", b"mixed")
    linux_write(linux, f"{work}/notes.txt", b"notes")
    linux.cli("share", "add", work, "--peer", "omen")
    remote = tmp_path / "omen-sync" / PurePosixPath(work).name

    clash = "README.md and Readme.md differ only in case and omen cannot hold both: rename one"
    wait_for(lambda: clash in one_status(linux)["message"], timeout=60, what="the case clash in Linux's sync status")
    assert one_status(linux)["state"] == "error"
    wait_for(lambda: remote.is_dir() and tree(remote) == {"notes.txt": b"notes"}, timeout=60, what="notes.txt")
    assert linux_tree(linux, work) == {"README.md": b"upper", "Readme.md": b"mixed", "notes.txt": b"notes"}

    # Windows' names are case-insensitive: the file is found under any spelling. A case-only rename there succeeds,
    # and on Windows it changes the name; Wine leaves the name as it was (its files live on a case-sensitive Linux
    # disk), so a case-only rename made on the Windows side is not shown here (tests/unit/test_sync_names.py has it).
    assert (remote / "NOTES.TXT").read_bytes() == b"notes"
    (remote / "notes.txt").rename(remote / "Notes.txt")
    listed = [n for n in os.listdir(remote) if not n.startswith(".nz")]
    assert listed == (["notes.txt"] if under_wine() else ["Notes.txt"]), WINE_DIFFERENCE
    (remote / "Notes.txt").rename(remote / "notes.txt")

    # The user follows the message: one of the two is renamed on Linux, and both travel.
    linux.agent.call("rename", path=f"{work}/Readme.md", to=f"{work}/Readme-old.md")
    want = {"README.md": b"upper", "Readme-old.md": b"mixed", "notes.txt": b"notes"}
    wait_for(lambda: tree(remote) == want, timeout=60, what="both files on Windows once renamed")
    wait_for(lambda: one_status(linux)["state"] == "idle", timeout=60, what="the error to clear")
    assert sorted(p.name for p in remote.iterdir() if not p.name.startswith(".nz")) == sorted(want)


def test_a_windows_node_driving_a_share_holds_apart_a_linux_peers_names_that_differ_only_in_case(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode], tmp_path: Path
) -> None:
    omen = make_node("omen").start()
    linux = make_linux_node("penguin", sync={"folder": "sync"}).start()
    paired(omen, linux)
    local = tmp_path / "photos"
    local.mkdir()
    (local / "trip.jpg").write_bytes(b"trip")
    omen.cli("share", "add", str(local), "--peer", "penguin")
    served = f"{linux.sync_folder}/photos"
    wait_for(lambda: linux_tree(linux, served) == {"trip.jpg": b"trip"}, timeout=60, what="trip.jpg on Linux")

    # Both names in one request: written one after the other by two requests, the Windows node (which drives) could
    # pull the first in between, as it should, before the clash exists (seen under load).
    linux.agent.call("write", files={f"{served}/Data.csv": b"first".hex(), f"{served}/DATA.csv": b"second".hex()})
    clash = "DATA.csv and Data.csv differ only in case and omen cannot hold both: rename one"
    wait_for(lambda: clash in one_status(omen)["message"], timeout=60, what="the case clash in Windows' sync status")
    assert tree(local) == {"trip.jpg": b"trip"}, "neither pulled over the other"
    assert linux_tree(linux, served) == {"trip.jpg": b"trip", "Data.csv": b"first", "DATA.csv": b"second"}


def test_a_file_locked_on_windows_is_retried_with_a_message_and_synced_once_released(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode], tmp_path: Path
) -> None:
    omen = make_node("omen", sync={"folder": str(tmp_path / "omen-sync")}).start()
    linux = make_linux_node("penguin").start()
    paired(omen, linux)
    work = f"{linux.linux_home}-work"
    linux_write(linux, f"{work}/ledger.xlsx", b"v1")
    linux_write(linux, f"{work}/other.txt", b"other v1")
    linux.cli("share", "add", work, "--peer", "omen")
    remote = tmp_path / "omen-sync" / PurePosixPath(work).name
    wait_for(
        lambda: remote.is_dir() and tree(remote) == {"ledger.xlsx": b"v1", "other.txt": b"other v1"},
        timeout=60,
        what="the first sync",
    )

    with locked(remote / "ledger.xlsx"):
        linux_write(linux, f"{work}/ledger.xlsx", b"v2 from Linux")
        status = status_saying(linux, "ledger.xlsx", "the locked file's error")
        assert status["state"] == "error" and "1 file not synced; ledger.xlsx" in status["message"]
        assert "retrying in" in status["message"]
        linux_write(linux, f"{work}/other.txt", b"other v2")
        wait_for(lambda: tree(remote).get("other.txt") == b"other v2", timeout=60, what="the other file")
        assert linux_tree(linux, work)["ledger.xlsx"] == b"v2 from Linux", "the edit is kept on Linux"
        assert omen.cli("status", "--json").returncode == 0, "the Windows node is still up"
    wait_for(lambda: tree(remote).get("ledger.xlsx") == b"v2 from Linux", timeout=60, what="the edit, released")
    wait_for(lambda: one_status(linux)["state"] == "idle", timeout=60, what="the error to clear")
    assert tree(remote) == {"ledger.xlsx": b"v2 from Linux", "other.txt": b"other v2"}


def test_a_windows_node_driving_a_share_retries_a_locked_file_and_never_takes_it_for_deleted(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode], tmp_path: Path
) -> None:
    omen = make_node("omen").start()
    linux = make_linux_node("penguin", sync={"folder": "sync"}).start()
    paired(omen, linux)
    local = tmp_path / "books"
    local.mkdir()
    (local / "ledger.xlsx").write_bytes(b"v1")
    omen.cli("share", "add", str(local), "--peer", "penguin")
    served = f"{linux.sync_folder}/books"
    wait_for(lambda: linux_tree(linux, served) == {"ledger.xlsx": b"v1"}, timeout=60, what="the first sync")

    with locked(local / "ledger.xlsx"), locked(local / "new.docx", create=b"made on Windows"):
        linux_write(linux, f"{served}/ledger.xlsx", b"v2 from Linux")
        status = status_saying(omen, "ledger.xlsx", "the locked file's error")
        assert status["state"] == "error" and "not synced" in status["message"], status
        assert "retrying in" in status["message"], status
        there = linux_tree(linux, served)
        assert there["ledger.xlsx"] == b"v2 from Linux", "not taken for deleted, not overwritten"
        assert "new.docx" not in there, "it cannot be read while locked"
    wait_for(lambda: tree(local).get("ledger.xlsx") == b"v2 from Linux", timeout=60, what="the edit, released")
    wait_for(lambda: linux_tree(linux, served).get("new.docx") == b"made on Windows", timeout=60, what="new.docx")
    wait_for(lambda: one_status(omen)["state"] == "idle", timeout=60, what="the error to clear")
    kept = [p.read_bytes() for p in (local / ".nzversions").rglob("ledger*")]
    assert kept == [b"v1"], "one version of the replaced file, not one per refused try"
