"""The node's discovery service: announce this node, browse for the others, and tell the registry where its
paired peers are now.

Every ``poll_s`` it checks this machine's addresses: when they change (a new Wi-Fi, a DHCP lease, a cable) it
starts a fresh responder on the current interfaces and announces again, so peers re-find it within a few seconds,
and it has the registry beat every peer at once over fresh channels: peers learn the new address from the beat
itself, by unicast, where multicast is blocked.
Announcements from paired peers become suggestions to the registry, which keeps an address only once the mTLS
handshake there proved it is that peer. Where multicast is blocked, peers the registry cannot reach are asked for
by unicast at every host they were last known at (``probe``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from noizylab_desktop.core.discovery import probe
from noizylab_desktop.core.discovery.addresses import is_ip, local_hosts
from noizylab_desktop.core.discovery.records import (
    SERVICE_TYPE,
    Announcement,
    instance_name,
    read,
    server_name,
    tag_of,
    txt_properties,
)
from noizylab_desktop.core.registry import Registry
from noizylab_desktop.core.transport import split_host_port

logger = logging.getLogger(__name__)

RESOLVE_MS = 3000


class Discovery:
    """Announces this node on the LAN and hands paired peers' announced addresses to the registry."""

    name = "discovery"

    def __init__(
        self,
        fingerprint: bytes,
        registry: Registry,
        grpc_port: Callable[[], int],
        pairing_port: Callable[[], int],
        hosts: Callable[[], list[str]],
        poll_s: float = 1.0,
        interfaces: tuple[str, ...] = (),
    ) -> None:
        self.tag = tag_of(fingerprint)
        self.registry = registry
        self.grpc_port = grpc_port
        self.pairing_port = pairing_port
        self.hosts = hosts
        self.poll_s = poll_s
        self.only = interfaces  # the configured addresses to announce and listen on, else every interface
        # What the others announce, by tag (multicast or unicast, the latest wins).
        self.found: dict[str, Announcement] = {}
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._interfaces: tuple[str, ...] = ()
        self._announced: tuple[tuple[str, ...], int, int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ announcing

    def _current(self) -> tuple[str, ...]:
        return self.only or tuple(local_hosts(limit=16))

    def _wanted(self) -> tuple[tuple[str, ...], int, int]:
        interfaces = self._current()
        hosts = [h for h in self.hosts() if is_ip(h) and not h.startswith("127.")] or list(interfaces)
        return tuple(hosts), self.grpc_port(), self.pairing_port()

    def _info(self, hosts: tuple[str, ...], port: int, pairing_port: int) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            instance_name(self.tag),
            port=port,
            properties=txt_properties(self.tag, port, pairing_port),
            server=server_name(self.tag),
            parsed_addresses=list(hosts),
        )

    async def refresh(self) -> None:
        """Announce again when this machine's addresses or what it announces changed."""
        interfaces = self._current()
        wanted = self._wanted()
        if self._zc is None or interfaces != self._interfaces:
            if self._interfaces and interfaces != self._interfaces:
                # Tell the peers by unicast too (multicast may be blocked): a beat from the new address.
                self._spawn(self.registry.reconnect())
            # The responder's sockets are bound per interface address: on a change, start over on the new ones.
            await self._close()
            self._zc = AsyncZeroconf(
                interfaces=list(self.only) if self.only else InterfaceChoice.All, ip_version=IPVersion.V4Only
            )
            self._interfaces = interfaces
            # The instance is named after this node's tag: no other responder can rightly hold it, so the
            # name-conflict probe (nearly a second) is skipped and the announcement goes out at once.
            await (await self._zc.async_register_service(self._info(*wanted), cooperating_responders=True))
            self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
            logger.info("announcing on the LAN at %s (discovery tag %s)", ", ".join(wanted[0]), self.tag)
        elif wanted != self._announced:
            await (await self._zc.async_update_service(self._info(*wanted)))
            logger.info("announcement updated: %s", "inviting" if wanted[2] else "not inviting")
        self._announced = wanted

    async def _close(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            zc, self._zc = self._zc, None
            try:
                await zc.async_unregister_all_services()  # goodbyes, so the others drop us from their caches
            finally:
                await zc.async_close()
        self._announced = None

    # ------------------------------------------------------------------ listening

    def _on_change(self, zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            return  # a goodbye: the registry notices on its own if the peer is really gone
        self._spawn(self._resolve(name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_MS):
            return
        announcement = read(info.properties, info.parsed_addresses(IPVersion.V4Only), info.port or 0)
        if announcement is not None:
            self.heard(announcement)

    def heard(self, announcement: Announcement) -> None:
        """Another node announced itself: remember it, and tell the registry if it is a paired peer."""
        if announcement.tag == self.tag:
            return
        self.found[announcement.tag] = announcement
        for state in self.registry.peers():
            if tag_of(state.peer.fingerprint) == announcement.tag:
                self.registry.suggest(state.peer.fingerprint, announcement.grpc_addresses(), announcement.via)

    def inviting(self) -> list[Announcement]:
        """Nearby machines whose ``pair invite`` is open."""
        return [a for a in self.found.values() if a.inviting]

    # ------------------------------------------------------------------ the unicast fallback

    async def probe_unreachable(self) -> None:
        """Ask every host an unreachable peer was known at, by unicast (multicast may be blocked on this LAN)."""
        hosts: set[str] = set()
        for state in self.registry.peers():
            if state.online and state.misses == 0:
                continue
            hosts.update(split_host_port(a)[0] for a in state.peer.addresses)
            seen = self.found.get(tag_of(state.peer.fingerprint))
            if seen is not None:
                hosts.update(seen.hosts)
        if not hosts:
            return
        timeout = min(self.poll_s, 1.0)
        answers = await asyncio.gather(*(probe.ask(h, timeout) for h in sorted(hosts)))
        for announcement in (a for found in answers for a in found):
            self.heard(announcement)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Announce, browse and probe until cancelled; then say goodbye."""
        try:
            while True:
                await self.refresh()
                await asyncio.gather(self.probe_unreachable(), asyncio.sleep(self.poll_s))
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.shield(self._close())
