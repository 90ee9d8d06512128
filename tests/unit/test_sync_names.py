"""Names on the wire: Windows-unsafe names stored encoded on a Windows peer and back decoded, NFD names of a macOS
peer, case-only renames (also towards a case-insensitive peer), case clashes and unencodable names as per-file
errors. No Windows or macOS host is here: the serving side's OS is the injected value its Offer reply would carry,
and the case-insensitive peer is the real SFTP server with a case-insensitive lookup in front of its folder."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from hypothesis import given
from hypothesis import strategies as st

from noizylab_desktop.services.sync.blocks import hash_bytes
from noizylab_desktop.services.sync.events import ShareState
from noizylab_desktop.services.sync.names import NameError_, decode_path, encode_path, encode_windows
from noizylab_desktop.services.sync.planner import Entry, case_clashes, plan
from noizylab_desktop.services.sync.sftp_server import ShareSftp
from tests.sync_harness import SyncPair, tree

UNSAFE = {"a:b.txt": b"colon", "CON.txt": b"reserved", "name.": b"trailing dot", "q?/w*.md": b"folder too", "x ": b" "}


MakePair = Callable[..., tuple[SyncPair, Callable[..., Any]]]


def _names(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".nzversions" not in p.parts}


@pytest.fixture
def make_pair(tmp_path: Path) -> Iterator[MakePair]:
    loop = asyncio.new_event_loop()
    made: list[SyncPair] = []

    def make(**kwargs: Any) -> tuple[SyncPair, Callable[..., Any]]:
        p = SyncPair(tmp_path / f"pair{len(made)}", **kwargs)
        loop.run_until_complete(p.start())
        made.append(p)
        return p, loop.run_until_complete

    yield make
    for p in made:
        loop.run_until_complete(p.close())
    loop.close()


# ---------------------------------------------------------------------- the mapping itself


@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/\x00"), min_size=1, max_size=12))
def test_every_name_without_private_use_characters_round_trips_through_the_windows_encoding(name: str) -> None:
    if any(0xF000 <= ord(c) < 0xF080 for c in name):
        with pytest.raises(NameError_, match="private-use"):
            encode_windows(name)
        return
    stored = encode_windows(name)
    assert not set('<>:"\\|?*') & set(stored) and not any(ord(c) < 32 for c in stored)
    assert not stored.endswith((".", " "))
    assert stored.split(".")[0].upper() not in ("CON", "PRN", "AUX", "NUL", "COM1", "LPT1")
    assert decode_path(stored, "windows") == unicodedata.normalize("NFC", name)


def test_the_mapping_per_os() -> None:
    assert encode_path("a:b/CON.txt", "windows") == "a\uf03ab/CO\uf04e.txt"
    assert encode_path("a:b/CON.txt", "linux") == "a:b/CON.txt" == encode_path("a:b/CON.txt", "darwin")
    assert encode_path("caf\u00e9/x", "darwin") == "cafe\u0301/x", "macOS gets NFD"
    assert decode_path("cafe\u0301/x", "darwin") == "caf\u00e9/x", "and everything read back is NFC"
    assert decode_path("a\uf03ab", "linux") == "a\uf03ab", "only a Windows side's names are decoded"
    assert decode_path("a\uf02fb\uf000", "windows") == "a\uf02fb\uf000", "never decoded into a / or a NUL"


def test_case_only_renames_become_renames_before_the_transfer() -> None:
    def e(path: str, content: str, mtime: int = 1) -> Entry:
        return Entry(path, len(content), mtime, hash_bytes(content.encode()).digest)

    old, new = e("Readme.md", "v1"), e("README.md", "v2", 2)
    pushed = plan({"README.md": new}, {"Readme.md": old}, {"Readme.md": old}, "a", "b").actions
    assert [(a.kind, a.path, a.source) for a in pushed] == [
        ("rename_remote", "README.md", "Readme.md"),
        ("push", "README.md", ""),
    ], "no delete that a case-insensitive side would apply to the file just written"
    assert pushed[1].remote is not None and pushed[1].remote.hash == old.hash, "the push replaces the renamed file"
    pulled = plan({"Readme.md": old}, {"README.md": new}, {"Readme.md": old}, "a", "b").actions
    assert [(a.kind, a.path, a.source) for a in pulled] == [
        ("rename_local", "README.md", "Readme.md"),
        ("pull", "README.md", ""),
    ]
    unchanged = plan({"README.md": e("README.md", "v1")}, {"Readme.md": old}, {"Readme.md": old}, "a", "b").actions
    assert [(a.kind, a.source) for a in unchanged] == [("rename_remote", "Readme.md")]
    twice = plan(
        {"README.md": new, "ReadMe.md": e("ReadMe.md", "v3")}, {"Readme.md": old}, {"Readme.md": old}, "a", "b"
    )
    assert [a.kind for a in twice.actions] == ["rename_remote", "push", "push"], "one rename, then a plain create"
    assert set(case_clashes(["Readme.md", "README.md", "other"], "beta")) == {"Readme.md", "README.md"}


# ---------------------------------------------------------------------- through the real SFTP server


def test_unsafe_names_arrive_on_a_windows_peer_encoded_and_come_back_decoded(make_pair: MakePair) -> None:
    p, run = make_pair(target_os="windows")
    for rel, data in UNSAFE.items():
        (p.local / rel).parent.mkdir(parents=True, exist_ok=True)
        (p.local / rel).write_bytes(data)
    assert run(p.sync())
    stored = {encode_path(rel, "windows"): data for rel, data in UNSAFE.items()}
    assert tree(p.remote) == stored, "the Windows side holds every name encoded, none dropped"
    assert all(not set('<>:"|?*') & set(n) and not n.endswith((".", " ")) for n in _names(p.remote))

    (p.remote / encode_path("a:b.txt", "windows")).write_bytes(b"edited on windows")
    (p.remote / "new\uf03f.txt").write_bytes(b"made on windows as new?.txt")
    assert run(p.sync())
    assert tree(p.local) == {**UNSAFE, "a:b.txt": b"edited on windows", "new?.txt": b"made on windows as new?.txt"}
    assert _names(p.remote) == {encode_path(r, "windows") for r in tree(p.local)}, "no second, unencoded copy"

    (p.local / "a:b.txt").rename(p.local / "a:c.txt")
    (p.local / "CON.txt").unlink()
    assert run(p.sync())
    assert tree(p.remote) == {encode_path(r, "windows"): d for r, d in tree(p.local).items()}
    sent = p.remote_side.bytes_sent + p.remote_side.bytes_received
    assert run(p.sync())
    assert p.remote_side.bytes_sent + p.remote_side.bytes_received == sent, "a second sync does nothing"


def test_a_name_that_cannot_be_encoded_gets_a_shown_per_file_error(make_pair: MakePair) -> None:
    p, run = make_pair(target_os="windows")
    (p.local / "ok.txt").write_text("fine")
    (p.local / "odd\uf03a.txt").write_text("holds a private-use character")
    (p.local / "big\uf03a.bin").write_bytes(os.urandom(2 * 1024 * 1024))  # not batched: the single-file push
    (p.local / "Readme.md").write_text("one")
    (p.local / "README.md").write_text("two")
    assert not run(p.sync())
    assert p.engine is not None
    assert set(p.engine.failed) == {"odd\uf03a.txt", "big\uf03a.bin", "Readme.md", "README.md"}
    assert "private-use" in p.engine.failed["odd\uf03a.txt"] and "private-use" in p.engine.failed["big\uf03a.bin"]
    assert "differ only in case" in p.engine.failed["Readme.md"]
    assert tree(p.remote) == {"ok.txt": b"fine"}, "the rest synced; the clashing files wait, untouched"
    assert p.engine.state == "error" and "4 files not synced" in p.engine.message
    shown = [e for e in p.events if isinstance(e, ShareState) and e.state == "error"]
    assert shown and "not synced" in shown[-1].message, "the tray and status hear of it"
    assert tree(p.local)["odd\uf03a.txt"] == b"holds a private-use character", "nothing is lost here"


def test_a_macos_peers_nfd_names_match_nfc_ones(make_pair: MakePair) -> None:
    p, run = make_pair(target_os="darwin")
    nfd = unicodedata.normalize("NFD", "caf\u00e9/r\u00e9sum\u00e9.txt")
    (p.remote / nfd).parent.mkdir()
    (p.remote / nfd).write_text("made on a Mac")
    (p.local / "na\u00efve.txt").write_text("made here, NFC")
    assert run(p.sync())
    assert tree(p.local) == {"caf\u00e9/r\u00e9sum\u00e9.txt": b"made on a Mac", "na\u00efve.txt": b"made here, NFC"}
    assert _names(p.remote) == {nfd, unicodedata.normalize("NFD", "na\u00efve.txt")}

    (p.local / "caf\u00e9" / "r\u00e9sum\u00e9.txt").write_text("edited here")
    assert run(p.sync())
    assert _names(p.remote) == {nfd, unicodedata.normalize("NFD", "na\u00efve.txt")}, "the NFD file was updated"
    assert (p.remote / nfd).read_text() == "edited here"


class CaseInsensitiveSftp(ShareSftp):
    """The embedded SFTP server over a folder looked up case-insensitively, case-preserving, as NTFS and APFS do."""

    def map_path(self, path: bytes) -> bytes:
        return os.fsencode(_fold_lookup(Path(os.fsdecode(super().map_path(path)))))

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = Path(os.fsdecode(self.map_path(oldpath))), Path(os.fsdecode(self.map_path(newpath)))
        if old == new:  # a case-only rename: the file keeps its place and takes the new spelling
            new = old.with_name(os.fsdecode(newpath).rsplit("/", 1)[-1])
        os.replace(old, new)


def _fold_lookup(path: Path) -> Path:
    if path.exists() or path.parent == path:
        return path
    parent = _fold_lookup(path.parent)
    if parent.is_dir():
        for child in parent.iterdir():
            if child.name.casefold() == path.name.casefold():
                return child
    return parent / path.name


@pytest.mark.parametrize("edited", [False, True], ids=["renamed", "renamed-and-edited"])
@pytest.mark.parametrize("peer", ["linux", "case-insensitive"])
def test_case_only_renames_propagate_without_losing_the_file(make_pair: MakePair, edited: bool, peer: str) -> None:
    if peer == "linux":
        p, run = make_pair()
    else:
        p, run = make_pair(target_os="windows", sftp_class=CaseInsensitiveSftp)
        p.peer_remote.batch_puts = False  # small files through SFTP too: every write meets the case-insensitive lookup
    (p.local / "Readme.md").write_text("v1")
    (p.local / "big.bin").write_bytes(os.urandom(1536 * 1024))
    assert run(p.sync())
    (p.local / "Readme.md").rename(p.local / "README.md")
    (p.local / "big.bin").rename(p.local / "BIG.bin")
    if edited:
        (p.local / "README.md").write_text("v2")
        (p.local / "BIG.bin").write_bytes(os.urandom(1536 * 1024))
    assert run(p.sync())
    assert tree(p.remote) == tree(p.local), "the peer holds the new spellings with the current contents"
    assert _names(p.remote) == {"README.md", "BIG.bin"}
    assert p.engine is not None
    assert list(p.engine.recent).count("sent README.md") == edited, "renamed first, then pushed once"
    sent = p.remote_side.bytes_sent
    assert run(p.sync())
    assert p.remote_side.bytes_sent == sent, "and nothing travels again"

    (p.remote / "README.md").rename(p.remote / "readme.md")  # and back, renamed on the peer
    assert run(p.sync())
    assert tree(p.local) == tree(p.remote) and "readme.md" in tree(p.local)


def test_nfd_names_on_this_side_match_the_peers_nfc_names(make_pair: MakePair) -> None:
    p, run = make_pair()
    nfd = unicodedata.normalize("NFD", "caf\u00e9/r\u00e9sum\u00e9.txt")
    (p.local / nfd).parent.mkdir()
    (p.local / nfd).write_text("made on a Mac, copied here")
    (p.remote / "caf\u00e9").mkdir()
    (p.remote / "caf\u00e9" / "na\u00efve.txt").write_text("NFC on the peer")
    assert run(p.sync())
    assert _names(p.remote) == {"caf\u00e9/r\u00e9sum\u00e9.txt", "caf\u00e9/na\u00efve.txt"}, "NFC on the wire"
    assert _names(p.local) == {nfd, unicodedata.normalize("NFD", "caf\u00e9") + "/na\u00efve.txt"}, "no NFC twins"

    (p.remote / "caf\u00e9" / "r\u00e9sum\u00e9.txt").write_text("edited on the peer")
    assert run(p.sync())
    assert (p.local / nfd).read_text() == "edited on the peer" and len(_names(p.local)) == 2
    sent = p.remote_side.bytes_sent + p.remote_side.bytes_received
    assert run(p.sync())
    assert p.remote_side.bytes_sent + p.remote_side.bytes_received == sent, "a second sync does nothing"


def test_two_names_here_that_differ_only_in_normalization_sync_one_and_show_the_other(make_pair: MakePair) -> None:
    p, run = make_pair()
    nfc, nfd = "caf\u00e9.txt", unicodedata.normalize("NFD", "caf\u00e9.txt")
    (p.local / nfd).write_text("the NFD twin")
    (p.local / nfc).write_text("the NFC one")
    for _ in range(2):  # the same outcome every pass, whatever order the disk lists them in
        assert not run(p.sync())
        assert p.engine is not None and p.engine.state == "error"
        assert set(p.engine.failed) == {nfd}
        assert "only in Unicode normalization" in p.engine.failed[nfd] and nfc in p.engine.failed[nfd]
        assert tree(p.remote) == {nfc: b"the NFC one"}
        assert (p.local / nfd).read_text() == "the NFD twin", "the twin is left as it is"

    os.rename(p.local / nfd, p.local / "cafe-2.txt")  # renamed: both sync
    assert run(p.sync())
    assert tree(p.remote) == {nfc: b"the NFC one", "cafe-2.txt": b"the NFD twin"}


def test_a_folder_that_cannot_be_read_holds_everything_under_it() -> None:
    synced = {rel: Entry(rel, 1, 1, hash_bytes(rel.encode()).digest) for rel in ("a/x", "a/y", "b/z", "top")}
    gone_here = plan({"top": synced["top"], "b/z": synced["b/z"]}, synced, synced, "alpha", "beta")
    assert {a.path for a in gone_here.actions} == {"a/x", "a/y"}, "without the hold, a's files would be deleted"
    assert gone_here.without({"a/": "Permission denied"}).actions == ()
    assert gone_here.without({"a/x": "Permission denied"}).actions != ()
    assert gone_here.without({".": "Permission denied"}).actions == ()


def test_a_case_insensitive_side_does_not_take_two_names_that_differ_only_in_case(
    make_pair: MakePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOIZYLAB_TEST_SYNC_OS", "darwin")  # this side is the Mac; the peer is Linux
    p, run = make_pair()
    (p.remote / "notes.txt").write_text("one")
    (p.remote / "Notes.txt").write_text("two")
    (p.remote / "other.txt").write_text("fine")
    assert not run(p.sync())
    assert p.engine is not None and set(p.engine.failed) == {"notes.txt", "Notes.txt"}
    assert "alpha cannot hold both" in p.engine.failed["notes.txt"]
    assert tree(p.local) == {"other.txt": b"fine"} and len(tree(p.remote)) == 3, "nothing overwritten or lost"


def test_nfd_names_on_a_linux_peers_disk_are_found_by_their_nfc_names(make_pair: MakePair) -> None:
    p, run = make_pair()
    nfd = unicodedata.normalize("NFD", "\u00e9t\u00e9/pr\u00eat.txt")
    (p.remote / nfd).parent.mkdir()
    (p.remote / nfd).write_text("copied from a Mac onto the peer")
    assert run(p.sync())
    assert tree(p.local) == {"\u00e9t\u00e9/pr\u00eat.txt": b"copied from a Mac onto the peer"}
    (p.local / "\u00e9t\u00e9" / "pr\u00eat.txt").write_text("edited here")
    (p.local / "\u00e9t\u00e9" / "new.txt").write_text("new here")
    assert run(p.sync())
    assert _names(p.remote) == {nfd, unicodedata.normalize("NFD", "\u00e9t\u00e9") + "/new.txt"}, "no NFC twins"
    assert (p.remote / nfd).read_text() == "edited here"


class WindowsOpenSshSftp(CaseInsensitiveSftp):
    """The embedded SFTP server dressed as Windows' OpenSSH: drive-letter paths, and names NTFS cannot hold refused."""

    def realpath(self, path: bytes) -> bytes:
        return b"/C:/Users/me" if path in (b"", b".") else os.fsencode(os.fsdecode(super().realpath(path)))

    @staticmethod
    def _refuse_unsafe(path: bytes) -> None:
        name = os.fsdecode(path).rsplit("/", 1)[-1]
        if set('<>:"\\|?*') & set(name) or name.endswith((".", " ")) or name.split(".")[0].upper() == "CON":
            raise asyncssh.SFTPFailure("The filename, directory name, or volume label syntax is incorrect.")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        self._refuse_unsafe(path)
        return super().open(path, pflags, attrs)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._refuse_unsafe(newpath)
        super().posix_rename(oldpath, newpath)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._refuse_unsafe(newpath)
        self.posix_rename(oldpath, newpath)


def test_a_plain_ssh_server_on_windows_is_recognised_and_its_names_are_encoded(make_pair: MakePair) -> None:
    p, run = make_pair(sftp_class=WindowsOpenSshSftp)
    # A plain SSH target: no Sync calls, whole files, and the OS learned on connecting (the drive in its paths).
    p.ssh_side(probe_os=True)
    assert p.remote_side.target.os == "linux", "nothing is known before connecting"
    files = {"a:b.txt": b"colon", "CON.txt": b"device name", "plain.txt": b"plain"}
    for rel, data in files.items():
        (p.local / rel).write_bytes(data)
    assert run(p.sync())
    assert p.remote_side.target.os == "windows"
    assert tree(p.remote) == {encode_path(rel, "windows"): data for rel, data in files.items()}
    (p.remote / encode_path("a:b.txt", "windows")).write_bytes(b"edited on windows")
    assert run(p.sync())
    assert tree(p.local) == {**files, "a:b.txt": b"edited on windows"}, "names come back decoded"


def test_a_plain_ssh_server_without_drive_letters_or_uname_is_taken_as_linux(make_pair: MakePair) -> None:
    p, run = make_pair()
    p.ssh_side(probe_os=True)
    (p.local / "a:b.txt").write_bytes(b"colon")
    assert run(p.sync())
    assert p.remote_side.target.os == "linux"
    assert tree(p.remote) == {"a:b.txt": b"colon"}, "a Linux server holds the name as it is"
