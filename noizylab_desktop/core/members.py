"""Grid membership at run time: the member list this node holds, kept in step with the other members and enforced.

- **Stored**: ``state/members.pb`` (the signed list, ``membership.py``; written atomically) and
  ``state/members-local.json`` (what only this machine decided: members its owner confirmed, peers it unpaired on
  its own, and which of its trusted peers came through the grid rather than its own pairing).
- **Introducing**: every peer this node paired with itself gets this node's signed introduction (at pairing, and once
  for the peers of a home made before membership existed), so the other members trust it too.
- **Enforcing**: each list taken is resolved from this node's point of view. A member not yet trusted is added to
  the trust store (or shown as pending while ``[grid] confirm_members`` is on, until ``noizylab devices confirm``);
  a removed device leaves the trust store at once, loses its permissions, and its open streams and SSH sessions end
  (``Sessions.end``, as unpairing does). Its next handshake fails.
- **Spreading**: a change is pushed to every member at once (``Node.PushMembers``). Heartbeats both ways carry the
  version each side holds, so a member that missed a push pulls (``Node.Members``) or is pushed to within a beat.
  A node starting up asks its members for their lists before it serves anyone (``catch_up``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core import membership as m
from noizylab_desktop.core.config import Paths, atomic_write
from noizylab_desktop.core.errors import PeerError
from noizylab_desktop.core.events import EventBus, PeerUnpaired
from noizylab_desktop.core.identity import Identity
from noizylab_desktop.core.member_types import Device, DeviceRemoved, GridSettings, MemberAdmitted
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.permissions import Permissions
from noizylab_desktop.core.registry import PeerState, Registry
from noizylab_desktop.core.sessions import Sessions
from noizylab_desktop.core.trust import TrustStore

logger = logging.getLogger(__name__)

PUSH_DEADLINE_S = 2.0
CATCH_UP_S = 3.0
LIST_FILE = "members.pb"
LOCAL_FILE = "members-local.json"


class Membership:
    """The member list this node holds, and what follows from it."""

    name = "membership"

    def __init__(
        self,
        paths: Paths,
        identity: Identity,
        trust: TrustStore,
        registry: Registry,
        permissions: Permissions,
        sessions: Sessions,
        bus: EventBus,
        settings: GridSettings,
        own_name: Callable[[], str],
        on_lost: Callable[[m.Removed], None] = lambda removed: None,
    ) -> None:
        self.identity = identity
        self.trust = trust
        self.registry = registry
        self.permissions = permissions
        self.sessions = sessions
        self.bus = bus
        self.settings = settings
        self.own_name = own_name
        self.on_lost = on_lost
        self.me = identity.fingerprint
        self._list_file = paths.state_dir / LIST_FILE
        self._local_file = paths.state_dir / LOCAL_FILE
        self.doc = pb.MemberList()
        if self._list_file.exists():
            self.doc.ParseFromString(self._list_file.read_bytes())
        self._digest = (self._shape(), m.digest(self.doc))
        local = json.loads(self._local_file.read_text()) if self._local_file.exists() else {}
        self.confirmed: set[bytes] = {bytes.fromhex(h) for h in local.get("confirmed", [])}
        self.forgotten: set[bytes] = {bytes.fromhex(h) for h in local.get("forgotten", [])}
        self.via_grid: set[bytes] = {bytes.fromhex(h) for h in local.get("via_grid", [])}
        self.refused = 0  # lists refused (stale or forged), for tests and status
        self._pulling: set[bytes] = set()
        self._tasks: set[asyncio.Future[object]] = set()
        self._told_removed = False
        # Whether an ID is a key its machine rotated away from (``node/keys.py``): such a member is not trusted again.
        self.retired: Callable[[bytes], bool] = lambda fp: False
        # The ID a peer's key replaced, for a peer this node followed through a key rotation (b"" for others).
        self.predecessor: Callable[[bytes], bytes] = lambda fp: b""

    # ------------------------------------------------------------------ state

    @property
    def version(self) -> int:
        return int(self.doc.version)

    @property
    def digest(self) -> bytes:
        """A digest of the records held (cached: every heartbeat carries it)."""
        if self._digest[0] != self._shape():
            self._digest = (self._shape(), m.digest(self.doc))
        return self._digest[1]

    def _shape(self) -> tuple[int, int, int]:
        # A list held is only ever replaced by one that holds more, or by a later version: this tells them apart.
        return self.doc.version, len(self.doc.introductions), len(self.doc.revocations)

    @property
    def own(self) -> tuple[bytes, bytes]:
        return self.me, self.identity.cert_der

    def roster(self) -> m.Roster:
        return m.holder_view(self.doc, self.me)

    def _save(self) -> None:
        atomic_write(self._list_file, self.doc.SerializeToString(), mode=0o644)
        local = {
            "confirmed": sorted(fp.hex() for fp in self.confirmed),
            "forgotten": sorted(fp.hex() for fp in self.forgotten),
            "via_grid": sorted(fp.hex() for fp in self.via_grid),
        }
        atomic_write(self._local_file, json.dumps(local).encode(), mode=0o644)

    def removed(self, fp: bytes) -> m.Removed | None:
        """The removal of ``fp`` when the grid removed it."""
        return self.roster().removed.get(fp)

    # ------------------------------------------------------------------ this node's own changes

    def introduce_paired(self) -> bool:
        """Introduce every peer this node paired with itself and has not introduced yet; whether any was."""
        introduced = {m.member_of(i) for i in self.doc.introductions if bytes(i.introducer) == self.me}
        changed = False
        for peer in self.trust.peers():
            fp = peer.fingerprint
            if fp in introduced or fp in self.via_grid or peer.removed_at is not None or self.removed(fp):
                continue
            self.doc = m.introduce(
                self.doc,
                peer.cert_der,
                peer.name,
                list(peer.addresses),
                peer.ssh_key,
                self.me,
                self.identity.sign,
                time.time(),
                self.predecessor(fp),
            )
            self.forgotten.discard(fp)
            logger.info(
                "introduced %s (%s) to the grid (member list version %d)", peer.name, peer.node_id, self.version
            )
            changed = True
        if changed:
            self._save()
        return changed

    def paired(self) -> None:
        """A pairing finished (either side): introduce the new peer and tell the grid."""
        paired_again = self.forgotten & {p.fingerprint for p in self.trust.peers()}
        if paired_again:  # unpaired here once, paired again by this machine's owner: theirs to decide
            self.forgotten -= paired_again
            self._save()
        if self.introduce_paired():
            self.spread()

    def forget(self, fp: bytes) -> None:
        """This node's owner unpaired ``fp`` on this machine only: the grid's list must not add it back here."""
        self.forgotten.add(fp)
        self.via_grid.discard(fp)
        self.confirmed.discard(fp)
        self._save()

    def find(self, ref: str) -> m.Member | m.Removed:
        """The member or removed device ``ref`` names: an exact ID or name, else the one ID it starts."""
        roster = self.roster()
        known: list[m.Member | m.Removed] = [*roster.members.values(), *roster.removed.values()]
        needle = ref.strip()
        flat = needle.upper().replace("-", "")
        if not flat:
            raise PeerError("name a device by its ID, the start of its ID, or its name")
        # The name this machine calls it now (after renames, made unique here), or the one it was introduced by.
        names = {d.fp: {_name(d), *(p.name for p in [self.trust.get(d.fp)] if p is not None)} for d in known}
        exact = [d for d in known if d.node_id.replace("-", "") == flat or needle in names[d.fp]]
        found = exact or [d for d in known if d.node_id.replace("-", "").startswith(flat)]
        if not found and (flat == format_id(self.me).replace("-", "") or needle == self.own_name()):
            raise PeerError(f"{ref!r} is this machine: remove it from another member of the grid")
        if not found:
            raise PeerError(f"no device of the grid matches {ref!r}: see `noizylab devices list`")
        if len(found) > 1:
            raise PeerError(f"{ref!r} matches {len(found)} devices: give more of the ID")
        return found[0]

    async def remove(self, ref: str, lost: bool) -> m.Removed:
        """Remove a device from the grid: sign its revocation as the next version, enforce it here, push it."""
        target = self.find(ref)
        if isinstance(target, m.Removed):
            raise PeerError(f"{_name(target) or target.node_id} was already removed from the grid")
        if not lost:
            await self.registry.tell_unpaired(target.fp)  # so it shows who removed it, not an outage
        self.doc = m.revoke(self.doc, target.fp, lost, self.me, self.identity.sign, time.time())
        self._save()
        logger.info("removed %s (%s) from the grid%s", target.name, target.node_id, " as lost" if lost else "")
        self.apply()
        self.spread()
        removed = self.roster().removed[target.fp]
        return removed

    def confirm(self, ref: str) -> m.Member:
        """This node's owner confirms a pending member: trust it from now on."""
        target = self.find(ref)
        if isinstance(target, m.Removed):
            raise PeerError(f"{_name(target) or target.node_id} was removed from the grid: it cannot be confirmed")
        self.confirmed.add(target.fp)
        self.forgotten.discard(target.fp)
        self._save()
        self.apply()
        return target

    # ------------------------------------------------------------------ enforcing

    def apply(self) -> None:
        """Make the trust store follow the list: removed devices out (their sessions ended), new members in."""
        roster = self.roster()
        mine = roster.removed.get(self.me)
        if mine is not None and not self._told_removed:
            self._told_removed = True
            logger.warning(
                "this machine was removed from the grid by %s: its members refuse it", self._name_of(mine.revoker)
            )
        for fp, gone in roster.removed.items():
            peer = self.trust.get(fp)
            if peer is None:
                continue
            self.trust.remove(fp)
            self.permissions.forget(fp)
            closed = self.sessions.end(fp)
            self.registry.peers()  # drops its state and channel
            by = self._name_of(gone.revoker)
            logger.warning(
                "%s (%s) was removed from the grid by %s%s; closed %d open streams and connections",
                peer.name,
                peer.node_id,
                by,
                " as lost" if gone.lost else "",
                closed,
            )
            self.bus.publish(PeerUnpaired(peer_id=peer.node_id, name=peer.name))
            self.bus.publish(DeviceRemoved(peer_id=peer.node_id, name=peer.name, removed_by=by, lost=gone.lost))
            if gone.lost:
                self.on_lost(gone)
        for fp, member in roster.members.items():
            if self.trust.get(fp) is not None or fp in self.forgotten or self.retired(fp):
                continue
            if self._rotation_owed(member, roster):
                continue  # its own statement moves our pin (node/keys.py); trusting the new key first would block it
            by = self._name_of(member.introducer)
            if self.settings.confirm_members and fp not in self.confirmed:
                if fp not in self.via_grid:
                    self.via_grid.add(fp)
                    self._save()
                    logger.info(
                        "%s (%s), introduced by %s, waits for `noizylab devices confirm`",
                        member.name,
                        member.node_id,
                        by,
                    )
                    self.bus.publish(
                        MemberAdmitted(peer_id=member.node_id, name=member.name, introduced_by=by, pending=True)
                    )
                continue
            self.via_grid.add(fp)
            self._save()
            peer = self.trust.add(
                member.anchor_der, member.name, member.ssh_key, list(member.addresses), reserved=self.own_name()
            )
            self.registry.peers()
            logger.info("%s (%s) joined the grid, introduced by %s", peer.name, peer.node_id, by)
            self.bus.publish(MemberAdmitted(peer_id=peer.node_id, name=peer.name, introduced_by=by, pending=False))

    def _rotation_owed(self, member: m.Member, roster: m.Roster) -> bool:
        """Whether ``member``'s key replaced one this node still pins (through any chain of rotations)."""
        seen = {member.fp}
        step = member.succeeds
        while step and step not in seen:
            if self.trust.get(step) is not None:
                return True
            seen.add(step)
            before = roster.members.get(step)
            step = before.succeeds if before is not None else b""
        return False

    def _name_of(self, fp: bytes) -> str:
        if fp == self.me:
            return "this machine"
        peer = self.trust.get(fp)
        if peer is not None:
            return peer.name
        member = self.roster().members.get(fp)
        return member.name if member is not None else format_id(fp)

    def pending(self, fp: bytes) -> bool:
        return self.settings.confirm_members and fp not in self.confirmed and self.trust.get(fp) is None

    def devices(self) -> list[Device]:
        """This machine, every member and every removed device."""
        roster = self.roster()
        mine = roster.removed.get(self.me)
        found = [
            Device(self.me, self.own_name(), "this machine", "", 0.0)
            if mine is None
            else Device(self.me, self.own_name(), "this machine, removed", self._name_of(mine.revoker), mine.at)
        ]
        for member in roster.members.values():
            state = "member" if self.trust.get(member.fp) is not None else "pending"
            if member.fp in self.forgotten:
                state = "unpaired here"
            elif self.retired(member.fp):
                continue  # an old key of a machine listed under its new one
            name = (self.trust.get(member.fp) or member).name
            found.append(Device(member.fp, name, state, self._name_of(member.introducer), member.at))
        for gone in roster.removed.values():
            found.append(
                Device(gone.fp, gone.name, "lost" if gone.lost else "removed", self._name_of(gone.revoker), gone.at)
            )
        return found

    # ------------------------------------------------------------------ taking others' lists

    def take(self, doc: pb.MemberList, sender: bytes) -> pb.MembersReply:
        """A member's list: verify, merge, enforce, and pass on what changed (never raises)."""
        self.introduce_paired()  # a peer paired a moment ago must be in our list before its list is judged
        try:
            merged = m.merge(self.doc, doc, self.own, self.identity.sign)
        except m.MembershipError as exc:
            self.refused += 1
            # A stale list is routine (a newcomer's first one, a push that crossed a newer one); a forgery is not.
            log = logger.info if isinstance(exc, m.StaleList) else logger.warning
            log("refused a member list from %s: %s", self._name_of(sender), exc.message)
            return pb.MembersReply(accepted=False, version=self.version, reason=exc.message)
        except ValueError as exc:  # a damaged field the checks above did not name (a signature that is no DER)
            self.refused += 1
            logger.warning("refused a damaged member list from %s: %s", self._name_of(sender), exc)
            return pb.MembersReply(accepted=False, version=self.version, reason="a damaged member list: refused")
        if merged.changed:
            self.doc = merged.doc
            self._save()
            logger.info("member list version %d from %s", self.version, self._name_of(sender))
            self.apply()
            self.spread(skip=() if merged.resigned else (sender,))
        return pb.MembersReply(accepted=True, version=self.version)

    def spread(self, skip: tuple[bytes, ...] = ()) -> None:
        """Push the list to every trusted member, at once, without waiting."""
        for state in self.registry.peers():
            if state.peer.fingerprint not in skip and not state.removed:
                self._spawn(self._push(state))

    def heard_version(self, fp: bytes, version: int, digest: bytes = b"") -> None:
        """A heartbeat said which version the peer ``fp`` holds: pull a newer one (or one of the same version that
        holds other records: two sides of a split network changed it as often), push to an older one."""
        differs = version == self.version and bool(digest) and digest != self.digest
        if (version > self.version or differs) and fp not in self._pulling:
            state = self._state(fp)
            if state is not None:
                self._spawn(self._pull(state))
        elif 0 < version < self.version:
            state = self._state(fp)
            if state is not None and fp not in self._pulling:
                self._spawn(self._push(state))

    def _state(self, fp: bytes) -> PeerState | None:
        return next((s for s in self.registry.peers() if s.peer.fingerprint == fp and not s.removed), None)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, state: PeerState) -> None:
        fp = state.peer.fingerprint
        self._pulling.add(fp)
        try:
            reply = await pb_grpc.NodeStub(self.registry.channel(state)).PushMembers(self.doc, timeout=PUSH_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            logger.debug("could not push the member list to %s: %s", state.peer.name, exc.code().name)
            return
        finally:
            self._pulling.discard(fp)
        if not reply.accepted and reply.version > self.version:
            await self._pull(state)  # it holds newer: ours was stale there

    async def _pull(self, state: PeerState) -> bool:
        """Read the peer's list and take it (or push ours to it when it is behind); whether it answered."""
        fp = state.peer.fingerprint
        self._pulling.add(fp)
        try:
            doc = await pb_grpc.NodeStub(self.registry.channel(state)).Members(pb.Empty(), timeout=PUSH_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            logger.debug("could not read %s's member list: %s", state.peer.name, exc.code().name)
            return False
        finally:
            self._pulling.discard(fp)
        if doc.version < self.version:
            await self._push(state)  # it is behind: ours is what it lacks
        elif doc.version > self.version or not m.same_records(doc, self.doc):
            self.take(doc, fp)
        return True

    async def catch_up(self, timeout: float = CATCH_UP_S) -> tuple[int, int]:
        """Before this node serves anyone (at start, and back from away: ``reconnect.py``): read every reachable
        member's list, so a removal made while this node was away is enforced before any other call. How many
        members it asked, and how many answered."""
        self.introduce_paired()
        self.apply()
        states = [s for s in self.registry.peers() if not s.removed and s.address]
        if not states:
            return 0, 0
        pulls = [asyncio.ensure_future(self._pull(s)) for s in states]
        done, _ = await asyncio.wait(pulls, timeout=timeout)
        return len(states), sum(1 for p in done if not p.cancelled() and p.exception() is None and p.result())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _name(device: m.Member | m.Removed) -> str:
    return device.name
