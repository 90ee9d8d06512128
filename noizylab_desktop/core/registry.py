"""The peer registry: who is paired, who is up, how fast they answer, what they can do.

Every ``heartbeat_s`` (1 s) the node calls each peer's ``Heartbeat`` with a deadline; after ``heartbeat_misses`` (3)
missed beats in a row the peer is down. A beat received from a peer counts as seen too, and tells us its current
address. Going up or down publishes ``PeerOnline``/``PeerOffline``.

Discovery (``core/discovery``) only suggests where a peer may be now (``suggest``): the registry tries a suggested
address with one heartbeat over a channel pinned to the peer's certificate, and keeps it only when that mTLS
handshake succeeds, so a forged announcement can cost one failed handshake and nothing more.

A peer whose own beat reached us within the last interval and a half is known to be up: our beat to it is skipped
(at most ``MAX_SKIPS`` in a row, so its round-trip time stays current), which nearly halves an idle pair's calls. When
its beats stop, ours resume within half an interval, so a peer that goes away is still noticed after 3 missed beats,
at most half a second later than if we had never skipped.

A peer that unpairs this node says so first (``Node.Unpaired``, ``tell_unpaired``): this node then remembers when
(``removed_us``, in the trust store), stops beating it and shows it as having removed this machine. A peer that did
so while this node was away cannot say it; this node sees its beats refused instead. gRPC reports a TLS handshake
that the peer ended (its server refuses our certificate) only as ``UNAVAILABLE: ... Socket closed``, the same words
as any peer that accepts the TCP connection and then closes it, so after ``REFUSALS`` such beats in a row, and once a
plain TLS connection shows that the peer's own certificate answers there (as ``noizylab doctor`` checks), the peer
*may* have removed this machine (``refusal == "handshake"``). A peer whose node answers ``UNAUTHENTICATED`` over a
connection opened before it unpaired us says so for certain (``"unpaired"``). Refused connections, unreachable hosts
and other failures reset the count; timeouts leave it as it is.

Each beat and its answer say that their sender pins keys (``pins_keys``; nodes that still pin certificates leave it
out): hearing it marks the peer in the trust store, and this node then shows it its current certificate instead of
its old one (``Identity.client_chain``). A peer's channel is made again when what it should show changes (that, or
a renewed certificate, ``renewal.py``); the old channel is dropped, not closed, so the calls open on it run to
their end over their connection while new calls use the new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.errors import TransportError
from noizylab_desktop.core.events import EventBus, PeerOffline, PeerOnline, PeerRenamed
from noizylab_desktop.core.identity import Identity
from noizylab_desktop.core.nodeid import fingerprint
from noizylab_desktop.core.pairing import fetch_certificate
from noizylab_desktop.core.transport import host_port, secure_channel
from noizylab_desktop.core.trust import TrustedPeer, TrustStore

logger = logging.getLogger(__name__)

MAX_SKIPS = 4
REFUSALS = 3  # refused beats in a row before a peer is said to refuse this node
NOTICE_S = 2.0  # how long unpairing waits for the peer to hear that it was unpaired


@dataclass
class PeerState:
    """What the registry knows of one peer right now."""

    peer: TrustedPeer
    online: bool = False
    misses: int = 0
    last_seen: float = 0.0
    rtt_ms: float = 0.0
    capabilities: pb.Capabilities | None = None
    address_index: int = 0
    channel: grpc.aio.Channel | None = None
    channel_address: str = ""
    channel_shows: tuple[int, bool] = (0, True)  # (leaf serial, pins_keys) the channel was made for
    heard_at: float = float("-inf")  # monotonic time of the peer's last beat to us
    skipped: int = 0
    trying: bool = False  # a suggested address is being tried
    tried: dict[str, float] = field(default_factory=dict)  # suggested address -> monotonic time last tried
    refusals: int = 0  # beats in a row that the peer refused (see the module's docstring)
    refused_how: str = ""  # how the last of them was refused: "handshake" or "unpaired"

    @property
    def address(self) -> str:
        addresses = self.peer.addresses
        return addresses[self.address_index % len(addresses)] if addresses else ""

    @property
    def removed(self) -> bool:
        """Whether the peer said it unpaired this node."""
        return self.peer.removed_at is not None

    @property
    def refusal(self) -> str:
        """How the peer refuses this node lately: "", "handshake" (it may have removed this machine) or "unpaired"
        (its node says it no longer pairs with this one)."""
        return self.refused_how if self.refusals >= REFUSALS and not self.removed else ""


def refusal_of(exc: grpc.aio.AioRpcError) -> str:
    """How a failed call shows that the peer refuses this node: "unpaired", "handshake", or "" when it does not."""
    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:  # the peer's Guard: "this node is not paired with you"
        return "unpaired"
    details = (exc.details() or "").casefold()
    # The TCP connection opened and the peer ended the handshake (an alert, where gRPC passes one on). Our own
    # refusal of its certificate reads CERTIFICATE_VERIFY_FAILED instead, and an unreachable peer "Connection refused".
    if exc.code() == grpc.StatusCode.UNAVAILABLE and ("socket closed" in details or "_alert_" in details):
        return "handshake"
    return ""


class Registry:
    """Heartbeats to every paired peer, and their health for status, menus and routing."""

    name = "registry"

    def __init__(
        self,
        identity: Identity,
        trust: TrustStore,
        bus: EventBus,
        grpc_port: Callable[[], int],
        interval_s: float = 1.0,
        misses: int = 3,
        own_name: Callable[[], str] = lambda: "",
    ) -> None:
        self.own_name = own_name  # this node's name now: each beat carries it, so peers learn a rename within a beat
        self.identity = identity
        self.trust = trust
        self.bus = bus
        self.grpc_port = grpc_port
        self.interval_s = interval_s
        self.misses = misses
        self.states: dict[bytes, PeerState] = {}
        # Awaited before each beat: what a peer must hear before anything else (this node's key rotations).
        self.before_beat: Callable[[PeerState], Awaitable[None]] | None = None
        # Grid membership (``members.py``) rides on the beats: the version of the member list this node holds, and
        # what to do with the version a peer's answer says it holds.
        self.members_version: Callable[[], tuple[int, bytes]] = lambda: (0, b"")
        self.heard_version: Callable[[bytes, int, bytes], None] = lambda fp, version, digest: None
        # What every channel to a peer passes its calls through (``core/reconnect.py``), and who hears when every
        # peer went down (this node's link broke: it reads the member list first when one is back).
        self.outgoing: Callable[[TrustedPeer], Sequence[grpc.aio.ClientInterceptor]] = lambda peer: ()
        self.cut_off: Callable[[], None] = lambda: None

    def peers(self) -> list[PeerState]:
        """The paired peers' states, in pairing order."""
        self._sync()
        return [self.states[p.fingerprint] for p in self.trust.peers()]

    def _sync(self) -> None:
        current = {p.fingerprint: p for p in self.trust.peers()}
        for fp in list(self.states):
            if fp not in current:
                state = self.states.pop(fp)
                if state.channel is not None:
                    asyncio.ensure_future(state.channel.close())
        for fp, peer in current.items():
            if fp in self.states:
                self.states[fp].peer = peer
            else:
                self.states[fp] = PeerState(peer=peer)

    def heard_from(self, fp: bytes, host: str | None, port: int) -> None:
        """A peer's heartbeat reached us: it is up, and now listens at ``host:port``."""
        self._sync()
        state = self.states.get(fp)
        if state is None or state.removed:
            return
        if host and port:
            address = host_port(host, port)
            if address not in state.peer.addresses:
                self.trust.set_addresses(fp, [address, *state.peer.addresses][:4])
                state.peer = self.trust.get(fp) or state.peer
                state.address_index = 0
        state.heard_at = time.monotonic()
        self._fresh_channel_if_failing(state)
        self._mark_seen(state)

    def _fresh_channel_if_failing(self, state: PeerState) -> None:
        """The peer reached us, so it answers now. A channel to it still waiting out a reconnect backoff (from
        before it trusted us: just after pairing, or while it was away) answers every call with its last error
        meanwhile ("Socket closed"), so it is dropped, and the next call makes a fresh one; calls still open on the
        old one finish there (closed after a few beats' time)."""
        if state.channel is not None and state.channel.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            self.drop_channel(state)

    def drop_channel(self, state: PeerState) -> None:
        """Have the next call to the peer make a fresh channel; the old one closes after a few beats' time, once
        the calls still open on it are done."""
        channel, state.channel = state.channel, None
        if channel is not None:
            asyncio.get_running_loop().call_later(3 * self.interval_s, lambda: asyncio.ensure_future(channel.close()))

    def pins_keys(self, fp: bytes) -> None:
        """The peer ``fp`` said it pins keys: show it this node's current certificate from its next new channel."""
        peer = self.trust.mark_pins_keys(fp)
        state = self.states.get(fp)
        if peer is not None and state is not None:
            state.peer = peer
            logger.info("peer %s pins keys now: it is shown this node's renewing certificate", peer.name)

    def named(self, fp: bytes, name: str) -> None:
        """A peer's beat says what it calls itself now: follow a rename (unique among our peers and this node)."""
        state = self.states.get(fp)
        if state is None or state.removed or not name.strip() or not name.isprintable():
            return  # a name with a control character (a terminal escape) is not taken: the old one stays
        was = state.peer.name
        renamed = self.trust.rename(fp, name, reserved=self.own_name())
        if renamed is not None:
            state.peer = renamed
            logger.info("peer %s is called %s now", was, renamed.name)
            self.bus.publish(PeerRenamed(peer_id=renamed.node_id, name=renamed.name, was=was))

    def suggest(self, fp: bytes, addresses: list[str], source: str = "discovery") -> None:
        """Discovery heard that a paired peer announces ``addresses``: try those that could help, once a second."""
        self._sync()
        state = self.states.get(fp)
        if state is None or state.trying:
            return
        now = time.monotonic()
        reachable = state.online and state.misses == 0
        fresh = [
            a
            for a in addresses
            # The address the beats already use is theirs to try; another one is tried when it is new, or when
            # the peer cannot be reached where the beats go.
            if a != state.address
            and (a not in state.peer.addresses or not reachable)
            and now - state.tried.get(a, float("-inf")) >= self.interval_s
        ]
        if not fresh:
            return
        state.trying = True
        asyncio.ensure_future(self._try_suggested(state, fresh, source))

    async def _try_suggested(self, state: PeerState, addresses: list[str], source: str) -> None:
        """One heartbeat at each suggested address; the first whose handshake proves the peer becomes its address."""
        try:
            for address in addresses:
                state.tried[address] = time.monotonic()
                channel = secure_channel(self.identity, state.peer.cert_pem, address, pins_keys=state.peer.pins_keys)
                began = time.perf_counter()
                try:
                    await pb_grpc.NodeStub(channel).Heartbeat(
                        pb.HeartbeatRequest(
                            sender_id=self.identity.node_id,
                            grpc_port=self.grpc_port(),
                            sent_at=time.time(),
                            pins_keys=True,
                        ),
                        timeout=self.interval_s,
                    )
                except grpc.aio.AioRpcError as exc:
                    logger.debug("%s suggested %s for %s: %s", source, address, state.peer.name, exc.code().name)
                    await channel.close()
                    continue
                fp = state.peer.fingerprint
                if fp not in self.states:  # unpaired meanwhile
                    await channel.close()
                    return
                self.trust.set_addresses(fp, [address, *(a for a in state.peer.addresses if a != address)][:4])
                state.peer = self.trust.get(fp) or state.peer
                state.address_index = 0
                old, state.channel, state.channel_address = state.channel, channel, address
                state.channel_shows = self._shows(state)
                if old is not None:
                    # Not now: closing a channel cancels the calls on it, and a beat may still be waiting on this one
                    # (its cancellation would end the registry's task).
                    asyncio.get_running_loop().call_later(3 * self.interval_s, _close_later, old)
                state.rtt_ms = (time.perf_counter() - began) * 1000
                logger.info("peer %s found at %s (%s; its certificate proved it)", state.peer.name, address, source)
                self._mark_seen(state)
                return
        finally:
            state.trying = False

    async def reconnect(self) -> None:
        """This machine's addresses changed: beat every peer now, each over a fresh channel.

        A channel's connection stays bound to the address it left from; once that address is gone its calls only
        time out, and gRPC may not notice for minutes. A fresh beat also tells each peer where this node is now
        (its ``heard_from``), which is how a peer finds us where multicast is blocked.
        """
        loop = asyncio.get_running_loop()
        states = [s for s in self.peers() if not s.removed]
        for state in states:
            if state.channel is not None:
                old, state.channel = state.channel, None
                loop.call_later(3 * self.interval_s, _close_later, old)  # a beat may still wait on it
        await asyncio.gather(*(self.beat(s) for s in states))

    def removed_us(self, fp: bytes, at: float) -> TrustedPeer | None:
        """The peer ``fp`` says it unpaired this node: remember when, stop beating it, and show it so."""
        peer = self.trust.mark_removed(fp, at)
        self._sync()
        state = self.states.get(fp)
        if peer is None or state is None:
            return None
        logger.info("peer %s (%s) unpaired this node; `noizylab unpair` forgets it here too", peer.name, peer.node_id)
        if state.online:
            state.online = False
            self.bus.publish(PeerOffline(peer_id=peer.node_id, name=peer.name))
        return peer

    async def tell_unpaired(self, fp: bytes, timeout: float = NOTICE_S) -> bool:
        """Tell the peer ``fp`` that this node is unpairing it, over the channel the beats use; best effort, at most
        ``timeout`` seconds. Whether it heard."""
        self._sync()
        state = self.states.get(fp)
        if state is None or not state.address or state.removed:  # nowhere to say it, or it removed us first
            return False
        try:
            await pb_grpc.NodeStub(self.channel(state)).Unpaired(pb.Empty(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            name, why = state.peer.name, exc.code().name
            logger.info("could not tell %s it is unpaired (%s): it will find its handshakes refused", name, why)
            return False
        return True

    def _mark_seen(self, state: PeerState) -> None:
        state.misses = 0
        state.refusals = 0
        state.last_seen = time.time()
        if not state.online:
            state.online = True
            logger.info("peer %s is up at %s", state.peer.name, state.address)
            self.bus.publish(PeerOnline(peer_id=state.peer.node_id, name=state.peer.name))

    def _mark_missed(self, state: PeerState, why: str) -> None:
        state.misses += 1
        if len(state.peer.addresses) > 1:
            state.address_index += 1
        if state.online and state.misses >= self.misses:
            state.online = False
            logger.warning("peer %s is down after %d missed heartbeats (%s)", state.peer.name, state.misses, why)
            self.bus.publish(PeerOffline(peer_id=state.peer.node_id, name=state.peer.name))
            if not any(s.online for s in self.states.values() if not s.removed):
                self.cut_off()

    def _shows(self, state: PeerState) -> tuple[int, bool]:
        leaf = self.identity.leaf
        return (leaf.serial if leaf else 0), state.peer.pins_keys

    def channel(self, state: PeerState) -> grpc.aio.Channel:
        """A pinned mTLS channel to the peer's current address (reused while the address and the certificate it
        shows hold)."""
        moved = state.channel_address != state.address
        if state.channel is None or moved or state.channel_shows != self._shows(state):
            if state.channel is not None and moved:
                asyncio.ensure_future(state.channel.close())
            # Renewed: the old channel is only dropped. Its open calls keep running (gRPC lets a channel's calls
            # outlive it), and its connection closes with the last of them.
            state.channel = secure_channel(
                self.identity,
                state.peer.cert_pem,
                state.address,
                pins_keys=state.peer.pins_keys,
                interceptors=self.outgoing(state.peer),
            )
            state.channel_address = state.address
            state.channel_shows = self._shows(state)
        return state.channel

    def _due(self, state: PeerState) -> bool:
        """Whether to beat this peer now (see the module's docstring for when a beat is skipped)."""
        if state.removed:  # it refuses our handshakes: beats would only fail
            return False
        heard_lately = time.monotonic() - state.heard_at < 1.5 * self.interval_s
        if heard_lately and state.online and state.capabilities is not None and state.skipped < MAX_SKIPS:
            state.skipped += 1
            return False
        state.skipped = 0
        return True

    async def beat(self, state: PeerState) -> None:
        """One heartbeat to one peer."""
        if not state.address:
            return
        if self.before_beat is not None:
            await self.before_beat(state)
        stub = pb_grpc.NodeStub(self.channel(state))
        address = state.address
        version, digest = self.members_version()
        began = time.perf_counter()
        try:
            reply = await stub.Heartbeat(
                pb.HeartbeatRequest(
                    sender_id=self.identity.node_id,
                    grpc_port=self.grpc_port(),
                    sent_at=time.time(),
                    sender_name=self.own_name(),
                    pins_keys=True,
                    members_version=version,
                    members_digest=digest,
                ),
                timeout=self.interval_s,
            )
        except grpc.aio.AioRpcError as exc:
            if state.removed:  # it unpaired this node while the beat was on its way: it is shown so, not as down
                return
            if state.address == address:  # else a suggested address was proved meanwhile: this beat is stale
                await self._note_refusal(state, exc, address)
                self._mark_missed(state, f"{exc.code().name}: {exc.details()}")
            return
        if state.removed:  # it answered, then unpaired this node before the answer was read: it is not back online
            return
        state.rtt_ms = (time.perf_counter() - began) * 1000
        if reply.pins_keys and not state.peer.pins_keys:
            self.pins_keys(state.peer.fingerprint)
        was_online = state.online
        self._mark_seen(state)
        self.heard_version(state.peer.fingerprint, reply.members_version, reply.members_digest)
        if not was_online or state.capabilities is None:
            try:
                info = await stub.GetInfo(pb.Empty(), timeout=self.interval_s * 2)
                state.capabilities = info.capabilities
            except grpc.aio.AioRpcError as exc:
                logger.debug("could not read %s's capabilities: %s", state.peer.name, exc.details())

    async def _note_refusal(self, state: PeerState, exc: grpc.aio.AioRpcError, address: str) -> None:
        """Count a beat the peer refused; see the module's docstring."""
        how = refusal_of(exc)
        if how == "handshake" and state.refusals + 1 == REFUSALS and not await self._answers_there(state, address):
            how = ""  # another machine, or no TLS at all, answers at that address: not the peer refusing us
        if not how:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                state.refusals = 0
            return
        state.refusals += 1
        state.refused_how = how
        if state.refusals == REFUSALS:
            logger.warning("peer %s refuses this node (%s): it may have unpaired it", state.peer.name, how)
        elif state.refusals < REFUSALS and how == "handshake" and state.channel is not None:
            # gRPC answers calls during its reconnect backoff with the last attempt's error: a fresh channel makes
            # each counted beat a handshake of its own.
            old, state.channel = state.channel, None
            asyncio.get_running_loop().call_later(3 * self.interval_s, _close_later, old)

    async def _answers_there(self, state: PeerState, address: str) -> bool:
        """Whether the peer's own certificate answers a plain TLS connection at ``address``."""
        try:
            return fingerprint(await fetch_certificate(address, self.interval_s)) == state.peer.fingerprint
        except (OSError, TimeoutError, TransportError):
            return False

    async def run(self) -> None:
        """Beat every peer each interval, all at once, until cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                began = loop.time()
                await asyncio.gather(*(self.beat(s) for s in self.peers() if self._due(s)))
                await asyncio.sleep(max(0.0, self.interval_s - (loop.time() - began)))
        finally:
            for state in self.states.values():
                if state.channel is not None:
                    await state.channel.close()
                    state.channel = None


def _close_later(channel: grpc.aio.Channel) -> None:
    asyncio.ensure_future(channel.close())
