"""The grid's member list: signed introductions and revocations, one version that only goes up (pure, no I/O).

A machine is a member when a member introduced it: the introducer signs an ``Introduction`` (the newcomer's anchor
certificate, name, addresses, SSH key) with its identity key, and every member that trusts the introducer verifies
that signature and trusts the newcomer. Pairing introduces both ways: each side signs the other.

A device is removed by a ``Revocation`` that a member signs. Revocations win for ever: no later record, from any
member, makes a removed device a member again (Syncthing's introducers re-adding removed devices, #3361, is the
failure this rules out). A revocation also names the records the removed device signed that stay valid (``keeps``:
those its revoker held): anything else it signs, before or after, is void, so a stolen laptop cannot backdate an
introduction. Revocations are applied in (version, revoker, member) order, and one signed by a device an earlier
one removed is void, so two members removing each other resolve the same way everywhere.

The list a member holds (``MemberList``) is every record it accepted, a version, and the signature of the member
that made that version. A member that receives a list:

- refuses one older than its own (a replay: ``StaleList``), and one with a record whose signature does not verify
  against its author's anchor, or whose author is no member (a forgery: ``ForgedList``);
- otherwise takes the union of both lists' records. When the union is the received list, it keeps that list as it
  is; when it holds more, it signs the union as ``max(versions) + 1`` and passes it on. Two members that changed
  the list at once thus meet on one content at one version.

Who is a member follows from the records alone (``resolve``), starting from the machine that asks: every list holds
the introductions its holder signed of the machines it paired with, so each member reaches the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.errors import PairingError
from noizylab_desktop.core.identity import is_anchor, verify_signature
from noizylab_desktop.core.nodeid import fingerprint, format_id

INTRODUCTION = b"noizylab-introduction-v1"
REVOCATION = b"noizylab-revocation-v1"
LIST = b"noizylab-member-list-v1"
MAX_RECORDS = 512  # a grid is two to ten machines; this bounds what a hostile list can make us verify
MAX_VERSION = 2**53  # far beyond any grid's changes, and far from uint64's end (a version is only ever raised)

Signer = Callable[[bytes], bytes]


class MembershipError(PairingError):
    """A member list or record that this node refuses (one line, naming why)."""


class StaleList(MembershipError):
    """A list older than the one this node holds: a replay."""


class ForgedList(MembershipError):
    """A list with a record or signature that does not verify."""


def _canon(*parts: bytes) -> bytes:
    """Length-prefixed parts, so no two field lists sign the same bytes."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def introduction_body(i: pb.Introduction) -> bytes:
    """The bytes an introducer signs."""
    return _canon(
        INTRODUCTION,
        i.anchor_der,
        i.name.encode(),
        "\n".join(i.addresses).encode(),
        i.ssh_key.encode(),
        i.introducer,
        str(i.version).encode(),
        repr(i.at).encode(),
        i.succeeds,
    )


def revocation_body(r: pb.Revocation) -> bytes:
    """The bytes a revoker signs."""
    return _canon(
        REVOCATION,
        r.member,
        r.revoker,
        str(r.version).encode(),
        repr(r.at).encode(),
        b"1" if r.lost else b"0",
        *sorted(r.keeps),
    )


def record_id(record: pb.Introduction | pb.Revocation) -> bytes:
    """A record's identity: the SHA-256 of what was signed (ECDSA signatures differ each time they are made)."""
    body = introduction_body(record) if isinstance(record, pb.Introduction) else revocation_body(record)
    return hashlib.sha256(body).digest()


def list_body(version: int, intros: Iterable[pb.Introduction], revs: Iterable[pb.Revocation], signer: bytes) -> bytes:
    """The bytes the signer of a list version signs."""
    ids = sorted(record_id(i) for i in intros) + [b"|"] + sorted(record_id(r) for r in revs)
    return _canon(LIST, str(version).encode(), signer, *ids)


def digest(doc: pb.MemberList) -> bytes:
    """What a list holds, in 32 bytes (whoever signed it): heartbeats compare it to notice lists that differ."""
    return hashlib.sha256(list_body(0, doc.introductions, doc.revocations, b"")).digest()


def member_of(i: pb.Introduction) -> bytes:
    """The ID of the machine an introduction introduces."""
    return fingerprint(i.anchor_der)


@dataclass(frozen=True)
class Member:
    """A member as the list shows it (its first valid introduction)."""

    fp: bytes
    anchor_der: bytes
    name: str
    addresses: tuple[str, ...]
    ssh_key: str
    introducer: bytes
    at: float
    succeeds: bytes = b""  # the ID its key replaced, when the introducer followed a key rotation

    @property
    def node_id(self) -> str:
        return format_id(self.fp)


@dataclass(frozen=True)
class Removed:
    """A removed device: who removed it, when, and whether it was marked lost."""

    fp: bytes
    revoker: bytes
    at: float
    lost: bool
    version: int
    name: str = ""

    @property
    def node_id(self) -> str:
        return format_id(self.fp)


@dataclass(frozen=True)
class Roster:
    """Who is a member and who is removed, as a list's records say from one member's point of view."""

    version: int
    members: dict[bytes, Member]
    removed: dict[bytes, Removed]

    def is_member(self, fp: bytes) -> bool:
        return fp in self.members and fp not in self.removed


def _anchors(intros: Iterable[pb.Introduction], own: tuple[bytes, bytes]) -> dict[bytes, bytes]:
    """Every anchor the records carry, by ID, and this node's own."""
    found = {own[0]: own[1]}
    for i in intros:
        found.setdefault(member_of(i), bytes(i.anchor_der))
    return found


def check_records(
    intros: Iterable[pb.Introduction], revs: Iterable[pb.Revocation], anchors: dict[bytes, bytes]
) -> None:
    """Raise ``ForgedList`` unless every record is well formed and signed by the key of the member it names
    (``anchors``: every member's anchor this node knows of, by ID)."""
    for i in intros:
        if not is_anchor(i.anchor_der):
            raise ForgedList("an introduction carries a damaged certificate")
        who = member_of(i)
        author = anchors.get(bytes(i.introducer))
        if author is None:
            raise ForgedList(f"the introduction of {format_id(who)} names an introducer that is no member")
        if not verify_signature(author, introduction_body(i), i.signature):
            raise ForgedList(f"the introduction of {format_id(who)} is not signed by the key of the member it names")
    for r in revs:
        author = anchors.get(bytes(r.revoker))
        if author is None or len(r.member) != 32:
            raise ForgedList("a removal names a member that is no member as its signer")
        if not verify_signature(author, revocation_body(r), r.signature):
            raise ForgedList(f"the removal of {format_id(r.member)} is not signed by the key of the member it names")


def resolve(version: int, intros: list[pb.Introduction], revs: list[pb.Revocation], own: bytes) -> Roster:
    """Who is a member and who is removed, starting from ``own`` (signatures are ``check_records``'s concern).

    Deterministic for every member of one connected grid: see the module's docstring for the rules."""
    valid = list(intros)
    ordered = sorted(revs, key=lambda r: (r.version, bytes(r.revoker), bytes(r.member), record_id(r)))
    while True:
        accepted = {own}
        grew = True
        while grew:
            grew = False
            for i in valid:
                fp = member_of(i)
                if fp not in accepted and bytes(i.introducer) in accepted:
                    accepted.add(fp)
                    grew = True
        removed: dict[bytes, pb.Revocation] = {}
        for r in ordered:
            author, target = bytes(r.revoker), bytes(r.member)
            if author not in accepted or target in removed:
                continue
            if author in removed and record_id(r) not in set(removed[author].keeps):
                continue
            removed[target] = r
        kept = [
            i
            for i in valid
            if bytes(i.introducer) not in removed or record_id(i) in set(removed[bytes(i.introducer)].keeps)
        ]
        if len(kept) == len(valid):
            break
        valid = kept  # only ever shrinks, so this ends
    members: dict[bytes, Member] = {}
    for i in sorted(valid, key=lambda i: (i.version, i.at)):
        fp = member_of(i)
        if fp in accepted and fp not in members and fp != own:
            members[fp] = Member(
                fp,
                bytes(i.anchor_der),
                i.name,
                tuple(i.addresses),
                i.ssh_key,
                bytes(i.introducer),
                i.at,
                bytes(i.succeeds),
            )
    names = {member_of(i): i.name for i in intros}
    return Roster(
        version,
        {fp: m for fp, m in members.items() if fp not in removed},
        {fp: Removed(fp, bytes(r.revoker), r.at, r.lost, r.version, names.get(fp, "")) for fp, r in removed.items()},
    )


def _union(mine: pb.MemberList, theirs: pb.MemberList) -> tuple[list[pb.Introduction], list[pb.Revocation]]:
    intros = {record_id(i): i for i in mine.introductions}
    revs = {record_id(r): r for r in mine.revocations}
    for i in theirs.introductions:
        intros.setdefault(record_id(i), i)
    for r in theirs.revocations:
        revs.setdefault(record_id(r), r)
    return list(intros.values()), list(revs.values())


def same_records(a: pb.MemberList, b: pb.MemberList) -> bool:
    """Whether two lists hold the same records (whoever signed them)."""
    return {record_id(i) for i in a.introductions} == {record_id(i) for i in b.introductions} and {
        record_id(r) for r in a.revocations
    } == {record_id(r) for r in b.revocations}


def signed(
    version: int, intros: list[pb.Introduction], revs: list[pb.Revocation], me: bytes, sign: Signer
) -> pb.MemberList:
    """A list version signed by ``me``."""
    doc = pb.MemberList(version=version, introductions=intros, revocations=revs, signer=me)
    doc.signature = sign(list_body(version, intros, revs, me))
    return doc


@dataclass(frozen=True)
class Merged:
    """What taking a received list gives: the list to hold now, whether it changed, whether this node re-signed it."""

    doc: pb.MemberList
    roster: Roster
    changed: bool
    resigned: bool


def merge(mine: pb.MemberList, theirs: pb.MemberList, own: tuple[bytes, bytes], sign: Signer) -> Merged:
    """Verify ``theirs`` against what this node (``own``: its ID and anchor) holds and take it (module docstring).

    Raises ``StaleList`` for an older list and ``ForgedList`` for one that does not verify; ``mine`` is unchanged."""
    me = own[0]
    if theirs.version < mine.version:
        raise StaleList(
            f"an older member list (version {theirs.version}; this machine holds version {mine.version}): refused"
        )
    if len(theirs.introductions) + len(theirs.revocations) > MAX_RECORDS:
        raise ForgedList(f"a member list of more than {MAX_RECORDS} records is more than a grid holds")
    if theirs.version > MAX_VERSION:
        raise ForgedList(f"a member list version past {MAX_VERSION} is no version a grid reaches")
    if not all(is_anchor(i.anchor_der) for i in theirs.introductions):
        raise ForgedList("an introduction carries a damaged certificate")
    intros, revs = _union(mine, theirs)
    anchors = _anchors(intros, own)
    held = {record_id(x) for x in mine.introductions} | {record_id(x) for x in mine.revocations}
    check_records(
        [i for i in theirs.introductions if record_id(i) not in held],
        [r for r in theirs.revocations if record_id(r) not in held],
        anchors,
    )
    signer = bytes(theirs.signer)
    body = list_body(theirs.version, theirs.introductions, theirs.revocations, signer)
    if signer not in anchors or not verify_signature(anchors[signer], body, theirs.signature):
        raise ForgedList(f"member list version {theirs.version} is not signed by the member it names")
    before = resolve(mine.version, list(mine.introductions), list(mine.revocations), me)
    for i in theirs.introductions:
        fp = member_of(i)
        if fp in before.removed and record_id(i) not in held:
            raise ForgedList(f"an introduction of {format_id(fp)}, which was removed from the grid: refused")
    roster = resolve(theirs.version, intros, revs, me)
    if signer != me and not roster.is_member(signer):
        raise ForgedList(f"member list version {theirs.version} is signed by {format_id(signer)}, no member")
    if theirs.version == mine.version and same_records(theirs, mine):
        return Merged(mine, roster, changed=False, resigned=False)
    if len(intros) == len(theirs.introductions) and len(revs) == len(theirs.revocations):
        return Merged(theirs, roster, changed=True, resigned=False)
    version = max(mine.version, theirs.version) + 1
    doc = signed(version, intros, revs, me, sign)
    return Merged(doc, replace(roster, version=version), changed=True, resigned=True)


def holder_view(doc: pb.MemberList, own: bytes) -> Roster:
    """Who is a member by the list this node holds."""
    return resolve(doc.version, list(doc.introductions), list(doc.revocations), own)


def introduce(
    mine: pb.MemberList,
    anchor_der: bytes,
    name: str,
    addresses: list[str],
    ssh_key: str,
    me: bytes,
    sign: Signer,
    now: float,
    succeeds: bytes = b"",
) -> pb.MemberList:
    """``mine`` with this node's introduction of the machine of ``anchor_der``, as the next version (``succeeds``:
    the ID its key replaced, when this node followed that machine's key rotation).

    Refuses a machine that was removed from the grid: it joins again only with a new identity."""
    fp = fingerprint(anchor_der)
    gone = holder_view(mine, me).removed.get(fp)
    if gone is not None:
        raise MembershipError(
            f"{gone.name or format_id(fp)} was removed from the grid: it can join again only with a new identity "
            "(on it, delete state/node-cert.pem, then pair)"
        )
    version = mine.version + 1
    intro = pb.Introduction(
        anchor_der=anchor_der,
        name=name,
        addresses=addresses,
        ssh_key=ssh_key,
        introducer=me,
        version=version,
        at=now,
        succeeds=succeeds,
    )
    intro.signature = sign(introduction_body(intro))
    return signed(version, [*mine.introductions, intro], list(mine.revocations), me, sign)


def revoke(mine: pb.MemberList, target: bytes, lost: bool, me: bytes, sign: Signer, now: float) -> pb.MemberList:
    """``mine`` with this node's removal of ``target`` as the next version; what ``target`` signed that this node
    holds stays valid (``keeps``), anything else it signs is void."""
    keeps = sorted(
        [record_id(i) for i in mine.introductions if bytes(i.introducer) == target]
        + [record_id(r) for r in mine.revocations if bytes(r.revoker) == target]
    )
    version = mine.version + 1
    rev = pb.Revocation(member=target, revoker=me, version=version, at=now, lost=lost, keeps=keeps)
    rev.signature = sign(revocation_body(rev))
    return signed(version, list(mine.introductions), [*mine.revocations, rev], me, sign)
