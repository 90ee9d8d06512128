"""The planner: pure decisions from the local files, the remote files and their common ancestor.

The ancestor is what both sides held after the last sync. A side whose hash still equals the ancestor's did not
change; the side that changed wins; when both changed to different contents it is a conflict (the newer mtime keeps
the name, the other becomes a conflict copy, named the same on both sides). A change beats a delete. Identical
contents are never a conflict, and a changed mtime with the same content is only recorded. A delete plus a create
of the same content on one side is a rename, done as a rename on the other side.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from noizylab_desktop.services.sync.conflicts import conflict_name, is_conflict_copy


@dataclass(frozen=True, slots=True)
class Entry:
    """A file as one side holds it. Slots: a pass holds three of these per file (here, there, the ancestor), and
    without an instance dict each takes about a third less memory."""

    path: str
    size: int
    mtime_ns: int
    hash: bytes
    blocks: bytes = field(default=b"", compare=False, repr=False)


Kind = Literal[
    "pull", "push", "delete_local", "delete_remote", "rename_local", "rename_remote", "conflict", "record", "forget"
]


def change_line(kind: Kind | Literal["merged"], path: str, peer: str, source: str = "") -> str:
    """A change done, as a person reads it in the tray's recent changes and ``sync status``: "sent a.txt",
    "deleted a.txt on pc" (not the planner's ``push`` or ``delete_remote``)."""
    renamed = f"{source} → {path}" if source else path
    return {
        "push": f"sent {path}",
        "pull": f"received {path}",
        "delete_local": f"deleted {path} here",
        "delete_remote": f"deleted {path} on {peer}",
        "rename_local": f"renamed {renamed} here",
        "rename_remote": f"renamed {renamed} on {peer}",
        "conflict": f"kept both versions of {path}",
        "merged": f"merged {path}",
    }.get(kind, f"{kind} {path}")


@dataclass(frozen=True)
class Action:
    """One step of a plan; ``local``/``remote`` are the entries it acts on, ``source`` the old path of a rename."""

    kind: Kind
    path: str
    local: Entry | None = None
    remote: Entry | None = None
    source: str = ""
    winner: Literal["local", "remote", ""] = ""
    copy_path: str = ""
    base: Entry | None = None  # a conflict's common ancestor (for a three-way merge)


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    tracked: int  # files in the ancestor, for the mass-delete guard

    @property
    def deletes(self) -> int:
        return sum(a.kind in ("delete_local", "delete_remote") for a in self.actions)

    @property
    def work(self) -> tuple[Action, ...]:
        """Actions that change a file somewhere (records and forgets only touch the index)."""
        return tuple(a for a in self.actions if a.kind not in ("record", "forget"))

    def without(self, paths: Collection[str]) -> Plan:
        """This plan less every action on (or renaming from) ``paths``: those files stay as they are on both sides.
        A path ending in ``/`` holds everything under that folder; ``.`` holds the whole share."""
        folders = tuple("" if p == "." else p for p in paths if p == "." or p.endswith("/"))

        def held(path: str) -> bool:
            return bool(path) and (path in paths or (bool(folders) and path.startswith(folders)))

        return Plan(tuple(a for a in self.actions if not held(a.path) and not held(a.source)), self.tracked)

    def too_many_deletes(self, ratio: float = 0.3, cap: int = 1000) -> bool:
        """True when the plan deletes more than ``ratio`` of the tracked files (of at least 10) or ``cap`` files."""
        return self.deletes > cap or (self.tracked >= 10 and self.deletes > ratio * self.tracked)


def _renames(
    side: Mapping[str, Entry], other: Mapping[str, Entry], ancestor: Mapping[str, Entry]
) -> list[tuple[str, str]]:
    """(old, new) pairs: files that ``side`` moved without changing them, while ``other`` still has the old one."""
    gone: dict[bytes, list[str]] = {}
    for p, a in ancestor.items():
        if p not in side:
            o = other.get(p)
            if o is not None and o.hash == a.hash:
                gone.setdefault(a.hash, []).append(p)
    if not gone:
        return []  # no file gone from this side is unchanged on the other: no rename to find, nothing to sort
    for paths in gone.values():
        paths.sort()
    pairs = []
    for q, e in sorted(side.items()):
        if q in ancestor or q in other:
            continue
        olds = gone.get(e.hash)
        if olds:
            pairs.append((olds.pop(0), q))
    return pairs


def plan(
    local: Mapping[str, Entry],
    remote: Mapping[str, Entry],
    ancestor: Mapping[str, Entry],
    local_name: str,
    remote_name: str,
) -> Plan:
    """Every action that brings both sides to the same files, keeping every last write."""
    actions: list[Action] = []
    done: set[str] = set()
    taken = set(local) | set(remote)
    for old, new in _renames(local, remote, ancestor):
        actions.append(Action("rename_remote", new, local=local[new], remote=remote[old], source=old))
        done |= {old, new}
    for old, new in _renames(remote, local, ancestor):
        if old in done or new in done:
            continue
        actions.append(Action("rename_local", new, local=local[old], remote=remote[new], source=old))
        done |= {old, new}
    for path in sorted(set(local) | set(remote) | set(ancestor)):
        if path in done:
            continue
        action = _decide(path, local.get(path), remote.get(path), ancestor.get(path), local_name, remote_name, taken)
        if action is not None:
            actions.append(action)
    return Plan(tuple(_case_renames(actions)), len(ancestor))


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def case_clashes(paths: Collection[str], other_side: str) -> dict[str, str]:
    """Path → why, for every path that a case-insensitive side would see as the same file as another one."""
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(_fold(p), []).append(p)
    return {
        p: f"{' and '.join(sorted(group))} differ only in case and {other_side} cannot hold both: rename one"
        for group in groups.values()
        if len(group) > 1
        for p in group
    }


def _case_renames(actions: list[Action]) -> list[Action]:
    """A delete of ``P`` plus a create of ``Q`` that differ only in case become a rename ``P → Q`` and then the
    transfer: on a case-insensitive side the delete and the create hit the same file, and would lose it."""
    deletes = {_fold(a.path): a for a in actions if a.kind in ("delete_local", "delete_remote")}
    if not deletes:
        return actions
    out: list[Action] = []
    merged: set[str] = set()
    for a in actions:
        gone = deletes.get(_fold(a.path)) if a.kind in ("push", "pull") else None
        if gone is not None and gone.path in merged:
            gone = None  # already renamed to another spelling: this one is a plain create
        if a.kind == "push" and a.remote is None and gone is not None and gone.kind == "delete_remote":
            assert gone.remote is not None
            old = dataclasses.replace(gone.remote, path=a.path)  # what the other side holds once renamed
            out += [Action("rename_remote", a.path, local=old, source=gone.path), dataclasses.replace(a, remote=old)]
            merged.add(gone.path)
        elif a.kind == "pull" and a.local is None and gone is not None and gone.kind == "delete_local":
            assert gone.local is not None
            old = dataclasses.replace(gone.local, path=a.path)
            out += [
                Action("rename_local", a.path, local=gone.local, remote=old, source=gone.path),
                dataclasses.replace(a, local=old),
            ]
            merged.add(gone.path)
        else:
            out.append(a)
    return [a for a in out if not (a.kind in ("delete_local", "delete_remote") and a.path in merged)]


def _decide(
    path: str,
    lo: Entry | None,
    re: Entry | None,
    an: Entry | None,
    local_name: str,
    remote_name: str,
    taken: set[str],
) -> Action | None:
    if lo is None and re is None:
        return Action("forget", path) if an is not None else None
    if lo is not None and re is not None and lo.hash == re.hash:
        if an is not None and an.hash == lo.hash and an.size == lo.size:
            return None
        return Action("record", path, local=lo, remote=re)
    a_hash = an.hash if an is not None else None
    local_changed = (lo.hash if lo else None) != a_hash
    remote_changed = (re.hash if re else None) != a_hash
    if not remote_changed:
        return Action("push", path, local=lo, remote=re) if lo is not None else Action("delete_remote", path, remote=re)
    if not local_changed:
        return Action("pull", path, local=lo, remote=re) if re is not None else Action("delete_local", path, local=lo)
    # Both changed. A change beats a delete.
    if lo is None:
        return Action("pull", path, remote=re)
    if re is None:
        return Action("push", path, local=lo)
    local_wins = (lo.mtime_ns, lo.hash) > (re.mtime_ns, re.hash)
    loser, loser_name = (re, remote_name) if local_wins else (lo, local_name)
    winner: Literal["local", "remote"] = "local" if local_wins else "remote"
    if is_conflict_copy(path):
        # No conflicts of conflicts: the newer copy wins, the older one goes to the versions folder.
        return Action("push" if local_wins else "pull", path, local=lo, remote=re)
    copy = conflict_name(path, loser.mtime_ns, loser_name, taken)
    taken.add(copy)
    return Action("conflict", path, local=lo, remote=re, winner=winner, copy_path=copy, base=an)
