"""The composition root: builds every service from the config and runs them under one supervisor.

Plain asyncio, no Qt: the tray hosts the same ``Node`` on the qasync loop, ``noizylab node`` on a standard loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from noizylab_desktop import __version__
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop._proto import noizylab_keys_pb2_grpc as kpb_grpc
from noizylab_desktop.core import identity as identity_mod
from noizylab_desktop.core.capabilities import capabilities
from noizylab_desktop.core.config import Paths, Settings, atomic_write, load_settings, save_settings
from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.discovery.addresses import local_hosts
from noizylab_desktop.core.discovery.settings import DiscoverySettings
from noizylab_desktop.core.edge import Edge
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.events import Event, EventBus, NodeRenamed, PeerPaired, PeerUnpaired, PermissionChanged
from noizylab_desktop.core.feature import Feature, Figure
from noizylab_desktop.core.member_types import GridSettings
from noizylab_desktop.core.members import Membership
from noizylab_desktop.core.membership import MembershipError, Removed
from noizylab_desktop.core.nodeid import parse_id
from noizylab_desktop.core.pairing import Paired, PairingServer, join
from noizylab_desktop.core.permissions import Permissions
from noizylab_desktop.core.reconnect import Outgoing, Reconnect
from noizylab_desktop.core.registry import Registry
from noizylab_desktop.core.renewal import Renewal
from noizylab_desktop.core.rotation import Receiver
from noizylab_desktop.core.secrets import KeyringStore, SecretStore, Vault
from noizylab_desktop.core.sessions import Sessions
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.core.supervisor import Supervisor
from noizylab_desktop.core.totp import Totp
from noizylab_desktop.core.transport import SERVER_OPTIONS, Guard, local_credentials, server_credentials
from noizylab_desktop.core.trust import TrustedPeer, TrustStore, machine_name
from noizylab_desktop.node.control import ControlApi
from noizylab_desktop.node.devices import Rotated, rotate_after_loss
from noizylab_desktop.node.features import feature_factories
from noizylab_desktop.node.keys import KeysApi, Rotator, follow_moves
from noizylab_desktop.node.node_api import NodeApi
from noizylab_desktop.node.rotation_log import RotationLog, finish_pending

if TYPE_CHECKING:
    from noizylab_desktop.core.discovery.doctor import Finding
    from noizylab_desktop.core.discovery.records import Announcement
    from noizylab_desktop.core.discovery.service import Discovery

logger = logging.getLogger(__name__)

SERVICE_NAMES = ("noizylab.grid.v1.Node", "noizylab.grid.v1.Control", "noizylab.grid.v1.Keys")
F = TypeVar("F", bound=Feature)


class Node:
    """One grid node: identity, trust, gRPC server, pairing, registry, under a supervisor."""

    def __init__(self, paths: Paths, settings: Settings, store: Callable[[str], SecretStore] = KeyringStore) -> None:
        self.paths = paths
        self.settings = settings
        self._store_factory = store
        self.bus = EventBus()
        # Every peer's open streams and SSH connections, ended on unpair and deny (features add theirs).
        self.sessions = Sessions()
        self._unlisten: Callable[[], None] = lambda: None
        self.supervisor = Supervisor(self.bus)
        self.grpc_port = 0
        self.local_port = 0  # loopback only, for this node's own command line (transport.local_credentials)
        self.started_at = 0.0
        self._stop = asyncio.Event()
        self.stop_reason = ""  # why someone else asked the node to stop (``request_stop``); empty for Quit or a signal
        self._server: grpc.aio.Server | None = None
        self._capabilities: pb.Capabilities | None = None
        self.features: dict[str, Feature] = {}
        self._broken: set[str] = set()
        # Ports that features bound (``sftp``, ``http``), reported by ``status``.
        self.bound_ports: dict[str, int] = {}
        self.discovery: Discovery | None = None
        # Whether the process hosting this node starts a fresh one on ``request_restart`` (``noizylab node``; the
        # tray does not yet), and whether one was asked for (a key rotation: ``node/keys.py``).
        self.can_restart = False
        self.restart_requested = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load (or create) the identity, bind the gRPC port, start every service."""
        self.paths.ensure()
        discovery_settings = parse_section(DiscoverySettings, self.settings.section("discovery"))
        store = await asyncio.to_thread(self._store_factory, self.settings.keychain_id)
        self.vault = vault = Vault(store, self.paths.vault_dir)
        self.totp = Totp(store, self.paths.state_dir)
        await asyncio.to_thread(finish_pending, self.paths, vault)  # a key rotation a crash left half done
        self.identity = await asyncio.to_thread(identity_mod.load_or_create, self.paths, vault, self.settings.name)
        self.identity.renew(self.settings.cert_lifetime_s)
        # Imported here: it names feature stores, which ``noizylab --help`` must not load.
        from noizylab_desktop.node.id_migration import migrate_home

        await asyncio.to_thread(migrate_home, self.paths)
        self.trust = TrustStore(self.paths.trust_db, self.identity.cert_pem)
        self._capabilities = await asyncio.to_thread(capabilities, self.settings.labels)
        self.guard = Guard(self.trust, self.sessions)
        self.permissions = Permissions(self.paths.state_dir / "permissions.sqlite", self.bus)
        self.receiver = Receiver(
            self.paths.state_dir / "rotations.sqlite",
            self.trust,
            self.bus,
            self.identity.fingerprint,
            [self.permissions.move],
        )
        await asyncio.to_thread(follow_moves, self.paths, self.receiver.moves())
        # Synchronous: by the time ``permissions.set`` returns, what relied on the scope has been ended.
        self._unlisten = self.bus.listen(self._on_event)
        self.registry = Registry(
            self.identity,
            self.trust,
            self.bus,
            lambda: self.grpc_port,
            self.settings.heartbeat_s,
            self.settings.heartbeat_misses,
            lambda: self.settings.name,
        )
        self.rotator = Rotator(self, await asyncio.to_thread(RotationLog.load, self.paths))
        self.registry.before_beat = self.rotator.present
        self.pairing = PairingServer(
            self.identity,
            self.trust,
            self.bus,
            self.settings.name,
            lambda: self.grpc_port,
            self.settings.grpc_host,
            self.settings.ports.pairing,
            self.settings.invite_ttl_s,
        )
        self.loss_rotated = Rotated(0, 0)  # what the last loss revoked here
        self.membership = Membership(
            self.paths,
            self.identity,
            self.trust,
            self.registry,
            self.permissions,
            self.sessions,
            self.bus,
            parse_section(GridSettings, self.settings.section("grid")),
            lambda: self.settings.name,
            self._lost,
        )
        self.registry.members_version = lambda: (self.membership.version, self.membership.digest)
        self.receiver.cosign_required = lambda: self.membership.settings.rotation_cosign
        self.receiver.member_anchor = self.member_anchor
        self.registry.heard_version = self.membership.heard_version
        # Back from away (stopped, asleep, cut off), the member list comes before any other call, both ways.
        self.reconnect = Reconnect(
            self.membership.catch_up,
            self.settings.heartbeat_s * self.settings.heartbeat_misses,
            self.identity.fingerprint,
        )
        self.guard.hold = self.reconnect.hold
        self.registry.cut_off = self.reconnect.cut_off
        self.registry.outgoing = self._outgoing
        self.pairing.refuse = self._refuse_joiner
        # A key rotation retires an ID without removing the machine: the list's record of the old key must not put
        # it back in the trust store, and the new key is introduced as soon as this node pins it.
        self.membership.retired = self._retired
        self.membership.predecessor = self._predecessor
        self.receiver.movers.append(self._peer_moved)
        self.ctx = NodeContext(
            settings=self.settings,
            paths=self.paths,
            identity=self.identity,
            trust=self.trust,
            registry=self.registry,
            permissions=self.permissions,
            bus=self.bus,
            supervisor=self.supervisor,
            sessions=self.sessions,
            totp=self.totp,
            publish_port=self.bound_ports.__setitem__,
            figures=self.figures,
            info=self.info,
            load=self.load,
            uptime_s=self.uptime_s,
        )
        self.features = {}
        for factory in feature_factories():
            feature = factory(self.ctx)
            self.features[feature.name] = feature
        # The Edge checks every request right after the Guard, before any feature's own interceptors.
        interceptors = [self.guard, Edge(), *(i for f in self.features.values() for i in f.interceptors())]
        server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
        for feature in self.features.values():
            feature.add_to_server(server)
        pb_grpc.add_NodeServicer_to_server(NodeApi(self), server)
        pb_grpc.add_ControlServicer_to_server(ControlApi(self), server)
        kpb_grpc.add_KeysServicer_to_server(KeysApi(self, self.receiver, self.rotator), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        address = f"{self.settings.grpc_host}:{self.settings.ports.grpc}"
        try:
            self.grpc_port = server.add_secure_port(address, server_credentials(self.identity, self.trust))
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot listen on {address}: the port is in use or not allowed; choose another with --port"
            ) from exc
        self.local_port = server.add_secure_port("127.0.0.1:0", local_credentials(self.identity))
        # A removal made while this node was away is enforced before it serves anyone (docs/trust.md).
        await self.membership.catch_up()
        await server.start()
        self._server = server
        self.started_at = time.time()
        self.supervisor.start(self.reconnect)
        self.supervisor.start(self.registry)
        self.supervisor.start(self.pairing)
        self.renewal = Renewal(self.identity, self.settings.cert_lifetime_s)
        self.supervisor.start(self.renewal)
        # A node listening on loopback only has nothing to announce on the LAN, unless told where to announce.
        loopback_only = self.settings.grpc_host.startswith("127.") and not discovery_settings.interfaces
        if discovery_settings.enabled and not loopback_only:
            # Imported here: zeroconf loads only in a node that announces itself.
            from noizylab_desktop.core.discovery.service import Discovery

            self.discovery = Discovery(
                self.identity.fingerprint,
                self.registry,
                lambda: self.grpc_port,
                self._inviting_port,
                self.advertised_hosts,
                discovery_settings.poll_s,
                discovery_settings.interfaces,
            )
            self.supervisor.start(self.discovery)
        for feature in self.features.values():
            await feature.start()
        feature_services = [n for f in self.features.values() for n in f.service_names()]
        for name in ("", *SERVICE_NAMES, *feature_services):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._write_runtime()
        logger.info("node %s (%s) listening on gRPC port %d", self.settings.name, self.identity.node_id, self.grpc_port)

    def request_stop(self, reason: str = "") -> None:
        """Ask ``run_until_stopped`` to return (from a signal handler or the Control service, which says why in
        ``reason``: the tray tells its person)."""
        self.stop_reason = self.stop_reason or reason
        self._stop.set()

    def request_restart(self, reason: str) -> None:
        """Stop, and have the hosting process start this home's node again at once, on the same ports."""
        logger.info("restarting: %s", reason)
        self.restart_requested = True
        self.request_stop(reason)

    def restarted(self) -> Node:
        """A fresh node for this home, to start after this one stopped on ``request_restart``: the same ports, so
        peers find it where they left it."""
        ports = self.settings.with_ports(self.grpc_port, self.bound_ports.get("sftp"), self.bound_ports.get("http"))
        return Node(self.paths, replace(load_settings(self.paths), ports=ports.ports), self._store_factory)

    async def run_until_stopped(self) -> None:
        """Wait until someone asks the node to stop, then stop it."""
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop every feature, service and the server; idempotent."""
        self._unlisten()
        for feature in reversed(list(self.features.values())):
            try:
                await feature.stop()
            except Exception:
                logger.exception("feature %s did not stop cleanly", feature.name)
        await self.supervisor.stop()
        if hasattr(self, "membership"):
            await self.membership.stop()
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=0.5)
            self.paths.runtime_file.unlink(missing_ok=True)
            self.trust.close()
            self.permissions.close()
            self.receiver.close()
            logger.info("node stopped")

    def _write_runtime(self) -> None:
        runtime = {
            "pid": os.getpid(),
            "grpc_port": self.grpc_port,
            "local_port": self.local_port,
            "started_at": self.started_at,
            **self.bound_ports,
        }
        atomic_write(self.paths.runtime_file, json.dumps(runtime).encode(), mode=0o644)

    # ------------------------------------------------------------------ queries

    def uptime_s(self) -> float:
        return time.time() - self.started_at if self.started_at else 0.0

    def load(self) -> float:
        """1-minute load average per CPU."""
        return os.getloadavg()[0] / (os.cpu_count() or 1) if hasattr(os, "getloadavg") else 0.0

    def info(self) -> pb.NodeInfo:
        """This node as peers and the command line see it."""
        return pb.NodeInfo(
            id=self.identity.node_id,
            name=self.settings.name,
            version=__version__,
            capabilities=self._capabilities,
            ports=pb.Ports(
                grpc=self.grpc_port, sftp=self.bound_ports.get("sftp", 0), http=self.bound_ports.get("http", 0)
            ),
            started_at=self.started_at,
        )

    def status(self, pid: int) -> pb.StatusReply:
        """Info, peers with their health, and call counts."""
        peers = [
            pb.Peer(
                id=s.peer.node_id,
                name=s.peer.name,
                online=s.online,
                address=s.address,
                last_seen=s.last_seen,
                rtt_ms=s.rtt_ms,
                capabilities=s.capabilities,
                paired_at=s.peer.paired_at,
                removed_at=s.peer.removed_at or 0.0,
                refusal=s.refusal,
            )
            for s in self.registry.peers()
        ]
        return pb.StatusReply(
            info=self.info(),
            peers=peers,
            pid=pid,
            pairing_port=self.pairing.bound_port,
            handled_calls=dict(self.guard.handled),
            refused_calls=dict(self.guard.refused),
        )

    def figures(self) -> list[Figure]:
        """Every feature's figures as they are now; one feature failing leaves the others' (logged once)."""
        found: list[Figure] = []
        for feature in self.features.values():
            try:
                found.extend(feature.figures())
            except Exception:
                if feature.name not in self._broken:
                    self._broken.add(feature.name)
                    logger.exception("feature %s could not report its figures", feature.name)
        return found

    def feature(self, kind: type[F]) -> F | None:
        """The running feature of class ``kind`` (typed), or None when this node does not run one."""
        return next((f for f in self.features.values() if isinstance(f, kind)), None)

    # ------------------------------------------------------------------ actions

    def _inviting_port(self) -> int:
        """The pairing port while an invite code is open (announced as ``invite=1``), else 0."""
        return self.pairing.bound_port if self.pairing.book.open_count() else 0

    def advertised_hosts(self) -> list[str]:
        """Hosts put into invite codes: the configured ones, else this machine's addresses."""
        if self.settings.advertise:
            return list(self.settings.advertise)
        if self.settings.grpc_host not in ("0.0.0.0", "::", ""):
            return [self.settings.grpc_host]
        return local_hosts()

    async def create_invite(self, hosts: list[str]) -> tuple[str, float]:
        """A new invite code and when it expires."""
        return await self.pairing.create_invite(hosts or self.advertised_hosts())

    async def join(self, code: str) -> Paired:
        """Pair with the node that made ``code``."""
        own = [f"{h}:{self.grpc_port}" for h in self.advertised_hosts()]
        paired = await join(code, self.identity, self.trust, self.settings.name, own)
        inviter = parse_id(paired.peer_id)
        gone = self.membership.removed(inviter)
        if gone is not None:
            self.trust.remove(inviter)
            raise MembershipError(
                f"{paired.peer_name} was removed from this grid: it can join again only with a new identity"
            )
        self.bus.publish(PeerPaired(peer_id=paired.peer_id, name=paired.peer_name, verification=paired.verification))
        return paired

    def inviting_nearby(self) -> list[Announcement]:
        """Nearby machines whose ``pair invite`` is open, as discovery heard them (none when it is off)."""
        return self.discovery.inviting() if self.discovery is not None else []

    async def diagnose(self) -> list[Finding]:
        """Why paired peers are unreachable (``noizylab doctor``'s findings), as this running node sees it."""
        from noizylab_desktop.core.discovery import doctor

        # With discovery off this node never relies on multicast, so whether it gets through is not examined.
        heard = list(self.discovery.found.values()) if self.discovery is not None else None
        return await doctor.examine(self.identity, self.trust.peers(), heard)

    def _refuse_joiner(self, fp: bytes) -> str:
        gone = self.membership.removed(fp)
        if gone is None:
            return ""
        return "this machine was removed from the grid: it can join again only with a new identity"

    def _peer_moved(self, old: bytes, new: bytes) -> None:
        # Called before the trust store moves the peer: introduce its new key once it has.
        asyncio.get_running_loop().call_soon(self.membership.paired)

    def _predecessor(self, fp: bytes) -> bytes:
        """The ID the peer ``fp``'s key replaced, when this node followed its rotation (b"" when it did not)."""
        for old, new in self.receiver.moves().items():
            if new == fp:
                return old
        return b""

    def _outgoing(self, peer: TrustedPeer) -> list[Outgoing]:
        """What a channel to ``peer`` passes its calls through: the wait for a catch-up, and the trust check."""
        return [Outgoing(self.reconnect, lambda: self.trust.is_trusted(peer.fingerprint), peer.name)]

    def member_anchor(self, fp: bytes) -> bytes | None:
        """The anchor of ``fp`` when it is a member of the grid as this node holds it (this node included), for a
        key rotation's co-signature; None for a removed device, a retired key, or a machine the list does not name."""
        if fp == self.identity.fingerprint:
            return self.identity.cert_der
        roster = self.membership.roster()
        member = roster.members.get(fp)
        if member is None or fp in roster.removed or self._retired(fp):
            return None
        return member.anchor_der

    def _retired(self, fp: bytes) -> bool:
        """Whether ``fp`` is a key that a peer, or this node, rotated away from."""
        return fp in self.receiver.moves() or any(link.signer_fp == fp for link in self.rotator.log.links)

    def _lost(self, removed: Removed) -> None:
        self.loss_rotated = rotate_after_loss(self.paths, self.pairing)

    async def remove_device(self, ref: str, lost: bool) -> tuple[Removed, Rotated]:
        """Remove a device from the whole grid (``noizylab devices remove``); with ``lost``, rotate what it knew."""
        self.loss_rotated = Rotated(0, 0)
        removed = await self.membership.remove(ref, lost)
        return removed, self.loss_rotated

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PeerPaired):
            self.membership.paired()
        if isinstance(event, PermissionChanged) and not event.allowed:
            closed = self.sessions.end(parse_id(event.peer_id), event.scope)
            logger.info("denied %s to %s; closed %d open streams and connections", event.scope, event.peer_id, closed)

    def rename(self, wanted: str) -> str:
        """Call this machine ``wanted`` from now on: saved in its config, shown at once, and sent to every peer with
        the next heartbeat (each peer keeps names unique on its side, as at pairing)."""
        name = machine_name(wanted)
        was = self.settings.name
        if name == was:
            return name
        # The config as it is on disk now (the command line may have changed other keys since this node started).
        save_settings(self.paths, replace(load_settings(self.paths), name=name))
        self.settings = replace(self.settings, name=name)
        # The context is frozen for the features; its owner swaps the settings in, so ``ctx.settings.name`` (read
        # at each use) is the new name everywhere at once.
        object.__setattr__(self.ctx, "settings", self.settings)
        self.pairing.name = name
        logger.info("this machine is called %s now (was %s)", name, was)
        self.bus.publish(NodeRenamed(name=name, was=was))
        return name

    async def unpair(self, ref: str) -> TrustedPeer:
        """Forget a peer: its next handshake fails, and its open streams and SSH connections close now.

        First the peer is told (at most ``registry.NOTICE_S``), so it shows that this node removed it rather than
        that this node went offline."""
        peer = self.trust.find(ref)
        told = await self.registry.tell_unpaired(peer.fingerprint)
        self.trust.remove(peer.fingerprint)
        self.membership.forget(peer.fingerprint)
        self.permissions.forget(peer.fingerprint)
        closed = self.sessions.end(peer.fingerprint)
        self.registry.peers()
        logger.info(
            "unpaired %s (%s)%s; closed %d open streams and connections",
            peer.name,
            peer.node_id,
            ", which was told" if told else "",
            closed,
        )
        self.bus.publish(PeerUnpaired(peer_id=peer.node_id, name=peer.name))
        return peer
