"""The inotify path of the sync watcher: the indexed move grouper, sync's temp files dropped at the door, and events
read in bulk."""

from __future__ import annotations

import itertools
import struct
import sys
import threading
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("inotify is Linux only", allow_module_level=True)

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent
from watchdog.observers.inotify_move_event_grouper import GroupedInotifyEvent, PathedInotifyEvent

from noizylab_desktop.services.sync.inotify import InotifyObserver, MoveGrouper, is_temp, parse_events
from noizylab_desktop.services.sync.watcher import CHANGES
from tests.conftest import wait_for

FROM, TO, CREATE, MODIFY = (
    InotifyConstants.IN_MOVED_FROM,
    InotifyConstants.IN_MOVED_TO,
    InotifyConstants.IN_CREATE,
    InotifyConstants.IN_MODIFY,
)


def ev(mask: int, name: str, cookie: int = 0) -> PathedInotifyEvent:
    return PathedInotifyEvent(InotifyEvent(1, mask, cookie, name.encode()), f"/w/{name}".encode())  # type: ignore[arg-type]


def names(item: GroupedInotifyEvent | None) -> str:
    """A queued item as text: ``name`` for one event, ``src>dst`` for a pair."""
    assert item is not None
    if isinstance(item, PathedInotifyEvent):
        return item.path.decode().removeprefix("/w/")
    return f"{item[0].path.decode().removeprefix('/w/')}>{item[1].path.decode().removeprefix('/w/')}"


def read_all(grouper: MoveGrouper, count: int) -> list[str]:
    """``count`` items read on another thread (as watchdog's emitter does), within a 10 s deadline."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(names(grouper.read_event()) for _ in range(count)))
    reader.start()
    reader.join(timeout=10)
    grouper.close()
    reader.join(timeout=10)
    return out


def read_all_open(grouper: MoveGrouper, count: int) -> list[str]:
    """Like ``read_all`` but leaves the grouper open."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(names(grouper.read_event()) for _ in range(count)))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), f"only {out} arrived"
    return out


def test_a_rename_storm_comes_out_as_pairs_in_order_without_waiting_out_the_delay() -> None:
    grouper = MoveGrouper()
    grouper.delay = 600.0  # a pair that waited for it would never arrive within the reader's deadline
    expected = []
    for i in range(2000):
        grouper.put_event(ev(CREATE, f"t{i}"))
        grouper.put_event(ev(MODIFY, f"t{i}"))
        grouper.put_event(ev(FROM, f"t{i}", cookie=i + 1))
        assert grouper.get_queued_moved_from_event(i + 1) is not None, "the source is found by its cookie"
        grouper.put_event(ev(TO, f"f{i}", cookie=i + 1))
        expected += [f"t{i}", f"t{i}", f"t{i}>f{i}"]
    assert read_all(grouper, len(expected)) == expected


def test_a_pair_takes_the_place_of_its_destination_and_events_between_keep_their_order() -> None:
    grouper = MoveGrouper()
    grouper.delay = 600.0
    grouper.put_event(ev(FROM, "a", cookie=7))
    grouper.put_event(ev(CREATE, "b"))
    grouper.put_event(ev(FROM, "c", cookie=8))
    grouper.put_event(ev(TO, "c2", cookie=8))
    grouper.put_event(ev(TO, "a2", cookie=7))
    assert read_all(grouper, 3) == ["b", "c>c2", "a>a2"]


def test_a_lone_moved_from_comes_alone_after_its_window_and_a_late_destination_is_new() -> None:
    grouper = MoveGrouper()
    grouper.delay = 0.05
    grouper.put_event(ev(FROM, "gone", cookie=3))
    grouper.put_event(ev(CREATE, "after"))
    first = read_all_open(grouper, 2)
    assert first == ["gone", "after"], "nothing overtakes the waiting source"
    assert grouper.get_queued_moved_from_event(3) is None
    grouper.put_event(ev(TO, "late", cookie=3))
    assert read_all(grouper, 1) == ["late"]


def test_closing_wakes_a_waiting_reader_and_an_overflow_drops_what_was_queued() -> None:
    grouper = MoveGrouper()
    grouper.put_event(ev(FROM, "x", cookie=1))
    grouper.discard_pending_events()
    assert grouper.get_queued_moved_from_event(1) is None
    got: list[GroupedInotifyEvent | None] = [ev(CREATE, "sentinel")]
    reader = threading.Thread(target=lambda: got.__setitem__(0, grouper.read_event()))
    reader.start()
    grouper.close()
    reader.join(timeout=10)
    assert not reader.is_alive() and got == [None]


def test_only_sync_temp_files_other_than_a_move_onto_them_are_dropped() -> None:
    temp = b".nzsync-0123456789abcdef.tmp"
    assert is_temp(temp, CREATE) and is_temp(temp, FROM)
    assert not is_temp(temp, TO), "a file renamed onto a temp name still leaves its old name"
    assert not is_temp(temp, CREATE | InotifyConstants.IN_ISDIR)
    assert not is_temp(b"notes.tmp", CREATE) and not is_temp(b".nzsync-x.txt", CREATE)


class Collect(FileSystemEventHandler):
    def __init__(self) -> None:
        self.events: list[FileSystemEvent] = []
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self.lock:
            self.events.append(event)

    def files(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return [(type(e).__name__, str(e.src_path), str(e.dest_path)) for e in self.events if not e.is_directory]


def observing(share: Path, handler: Collect) -> InotifyObserver:
    """Our observer on ``share``, not started, asking for the events the sync watcher asks for."""
    observer = InotifyObserver()
    observer.schedule(
        handler,
        str(share),
        recursive=True,
        event_filter=CHANGES,
    )
    return observer


def test_the_real_observer_reports_moves_creations_and_deletes_but_no_temp_file(tmp_path: Path) -> None:
    share, outside = tmp_path / "share", tmp_path / "outside"
    (share / "sub").mkdir(parents=True)
    outside.mkdir()
    (share / "old.txt").write_text("o")
    (share / "leaving.txt").write_text("l")
    handler = Collect()
    observer = observing(share, handler)
    observer.start()
    try:
        for i in range(300):  # as a peer's batch lands: temp file, then a rename onto the final name
            temp = share / "sub" / f".nzsync-{i:016x}.tmp"
            temp.write_bytes(b"data")
            temp.rename(share / "sub" / f"f{i}.txt")
        (share / "old.txt").rename(share / "sub" / "new.txt")  # a user's rename inside the share
        (share / "leaving.txt").rename(outside / "leaving.txt")  # out of the share: a delete, after the window
        done = ("FileDeletedEvent", str(share / "leaving.txt"), "")
        wait_for(lambda: done in handler.files(), timeout=20)
    finally:
        observer.stop()
        observer.join(timeout=10)
    assert not observer.is_alive(), "stopping wakes the grouper's reader"
    seen = handler.files()
    assert not [e for e in seen if ".nzsync-" in e[1] + e[2]], "no event of a temp file"
    assert {("FileCreatedEvent", str(share / "sub" / f"f{i}.txt"), "") for i in range(300)} <= set(seen)
    assert ("FileMovedEvent", str(share / "old.txt"), str(share / "sub" / "new.txt")) in seen


def test_the_reader_takes_a_burst_of_events_in_a_few_reads_not_one_wake_per_event(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    handler = Collect()
    observer = observing(share, handler)
    reader = observer._inotify_fd  # noqa: SLF001 - the reader is what is under test
    reads: list[list[bytes]] = []
    plain_read = reader.read_events

    def counted(**kwargs: int) -> list[InotifyEvent]:
        got = plain_read(**kwargs)
        reads.append([e.name for e in got])
        return got

    reader.read_events = counted  # type: ignore[method-assign]
    observer.start()
    try:
        for i in range(1000):  # as a peer's batch lands: five events per file, four of them of its temp file
            temp = share / f".nzsync-{i:016x}.tmp"
            temp.write_bytes(b"data")
            temp.rename(share / f"f{i}.txt")
        last = ("FileCreatedEvent", str(share / "f999.txt"), "")
        wait_for(lambda: last in handler.files(), timeout=20)
    finally:
        observer.stop()
        observer.join(timeout=10)
    names = [name for read in reads for name in read]
    assert b"f999.txt" in names and not [n for n in names if n.startswith(b".nzsync-")], "temp events never parsed"
    # One read per wake; the reader naps 10 ms after each, so this burst takes a few dozen reads at most, where
    # reading each event as it came took over a thousand.
    assert len([r for r in reads if r]) < 100, f"{len(reads)} reads for 1,000 files"


def raw(wd: int, mask: int, cookie: int, name: bytes, pad: int) -> bytes:
    """One ``struct inotify_event`` as the kernel writes it: the name NUL-padded to ``len`` bytes."""
    padded = name + b"\0" * pad if name or pad else b""
    return struct.pack("iIII", wd, mask, cookie, len(padded)) + padded


def test_a_raw_read_keeps_every_event_but_a_temp_files_own_and_those_without_a_watch() -> None:
    temp = b".nzsync-00ff00ff00ff00ff.tmp"
    names = [b"f.txt", temp, b".nzsync-x", b"a.tmp", b".nzsync-.tmp.txt", b""]
    masks = [CREATE, MODIFY, FROM, TO, CREATE | InotifyConstants.IN_ISDIR, InotifyConstants.IN_CLOSE_WRITE]
    cases = [(1 + i, mask, 7 * i, name, i % 4) for i, (name, mask) in enumerate(itertools.product(names, masks))]
    overflow = (-1, InotifyConstants.IN_Q_OVERFLOW, 0, b"", 0)
    lost = (-1, CREATE, 0, b"lost.txt", 3)  # no watch: watchdog drops it too
    buffer = b"".join(raw(*case) for case in [*cases, overflow, lost])
    got = [(e.wd, e.mask, e.cookie, e.name) for e in parse_events(buffer)]
    own = {CREATE, MODIFY, FROM, InotifyConstants.IN_CLOSE_WRITE}  # a move onto it, or a folder so named, stay
    kept = [(wd, mask, cookie, name) for wd, mask, cookie, name, _ in cases if not (name == temp and mask in own)]
    assert got == [*kept, overflow[:4]]
    assert len(got) == len(cases) + 1 - 4
