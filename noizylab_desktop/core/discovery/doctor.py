"""Why a paired peer is unreachable, in words: one finding per line, each naming the fix.

For each address a peer was known or announced at: is there a route (and does it leave through a VPN
interface), does anything listen there (refused: the peer's node is not running; silent: a firewall or the machine
is off), does the mTLS handshake succeed (or is it the wrong machine, or does the peer no longer trust us). Then
whether its announcements arrive by multicast, or only when asked by unicast (multicast blocked). About this
machine: whether multicast has a route, whether a VPN interface is up, and on Windows whether a network is marked
Public (Windows Firewall then drops other machines' connections to the app).
"""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.discovery import probe
from noizylab_desktop.core.discovery.addresses import interface_of, is_vpn, route_source, vpn_interfaces
from noizylab_desktop.core.discovery.records import Announcement, tag_of
from noizylab_desktop.core.errors import TransportError
from noizylab_desktop.core.identity import Identity
from noizylab_desktop.core.nodeid import fingerprint
from noizylab_desktop.core.pairing import fetch_certificate
from noizylab_desktop.core.transport import secure_channel, split_host_port
from noizylab_desktop.core.trust import TrustedPeer

CONNECT_S = 2.0
MDNS_GROUP = "224.0.0.251"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    subject: str  # the peer's name, or "this machine"
    kind: str  # reachable, no-route, vpn, not-listening, no-answer, handshake-refused, wrong-machine,
    # multicast-blocked, not-announcing; about this machine: no-multicast-route, vpn, vpn-present, public-network,
    # not-running
    text: str

    def line(self) -> str:
        return f"{self.subject}: {self.text}"


def local_findings(platform: str = sys.platform) -> list[Finding]:
    """What on this machine stops discovery, or connections, for every peer."""
    found = []
    source = route_source(MDNS_GROUP)
    iface = interface_of(source) if source else None
    if source is None:
        found.append(Finding("this machine", "no-multicast-route", _NO_MULTICAST_ROUTE))
    elif iface and is_vpn(iface):
        text = f"multicast leaves through the VPN interface {iface}: nearby machines do not hear this one"
        found.append(Finding("this machine", "vpn", text))
    others = [name for name in vpn_interfaces() if name != iface]
    if others:
        text = (
            f"a VPN interface is up ({', '.join(others)}): if a peer on the LAN is unreachable, allow local network "
            "access in the VPN's settings or disconnect it"
        )
        found.append(Finding("this machine", "vpn-present", text))
    if platform == "win32":
        found += [public_network_finding(name) for name in public_networks(windows_profiles())]
    return found


_NO_MULTICAST_ROUTE = "no route for multicast: LAN discovery cannot work"


def windows_profiles() -> list[dict[str, Any]]:
    """Windows' network profiles (``Get-NetConnectionProfile``): name, interface and category of each network."""
    command = "Get-NetConnectionProfile | Select-Object Name,InterfaceAlias,NetworkCategory | ConvertTo-Json -Compress"
    try:
        shown = subprocess.run(
            ["powershell", "-NoProfile", "-NonInteractive", "-Command", command],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_profiles(shown)


def parse_profiles(shown: str) -> list[dict[str, Any]]:
    """``ConvertTo-Json``'s output: one object for one network, a list for several, nothing for none."""
    try:
        value = json.loads(shown) if shown.strip() else []
    except ValueError:
        return []
    rows = value if isinstance(value, list) else [value]
    return [row for row in rows if isinstance(row, dict)]


def public_networks(profiles: Sequence[dict[str, Any]]) -> list[str]:
    """The networks Windows marks Public (``NetworkCategory`` 0 or ``"Public"``), as ``name (interface)``."""
    public = []
    for row in profiles:
        if row.get("NetworkCategory") in (0, "Public"):
            name, alias = row.get("Name") or "unnamed", row.get("InterfaceAlias") or ""
            public.append(f"{name} ({alias})" if alias else str(name))
    return public


def public_network_finding(network: str) -> Finding:
    text = (
        f"Windows marks the network {network} Public: its firewall drops other machines' connections to this app; "
        "mark it Private (Settings > Network & internet > the network > Network profile type)"
    )
    return Finding("this machine", "public-network", text)


async def examine(
    identity: Identity, peers: Sequence[TrustedPeer], heard: list[Announcement] | None, node_running: bool = True
) -> list[Finding]:
    """The whole report: this machine first, then each peer (all peers are examined at once)."""
    found = local_findings()
    if not node_running:
        text = "its node is not running: peers cannot reach it (start it with `noizylab start`)"
        found.append(Finding("this machine", "not-running", text))
    for report in await asyncio.gather(*(diagnose(identity, p, heard) for p in peers)):
        found += report
    return found


async def diagnose(identity: Identity, peer: TrustedPeer, heard: list[Announcement] | None) -> list[Finding]:
    """Findings for one peer; ``heard`` is what a multicast browse heard meanwhile (None: discovery is off here, so
    whether multicast gets through is not examined)."""
    tag = tag_of(peer.fingerprint)
    by_multicast = next((a for a in heard or [] if a.tag == tag), None)
    addresses = list(dict.fromkeys([*peer.addresses, *(by_multicast.grpc_addresses() if by_multicast else [])]))
    hosts = list(dict.fromkeys(split_host_port(a)[0] for a in addresses))
    answers = await asyncio.gather(*(probe.ask(h, 1.0) for h in hosts))
    by_unicast = next((a for found in answers for a in found if a.tag == tag), None)
    if by_unicast is not None:
        addresses += [a for a in by_unicast.grpc_addresses() if a not in addresses]
    findings = []
    for address in addresses:
        findings += await _check_address(identity, peer, address)
    if any(f.kind == "reachable" for f in findings):
        findings = [f for f in findings if f.kind == "reachable"]
    if heard is None:
        return findings
    if by_multicast is None and by_unicast is not None:
        findings.append(Finding(peer.name, "multicast-blocked", _MULTICAST_BLOCKED))
    elif by_multicast is None and by_unicast is None:
        findings.append(Finding(peer.name, "not-announcing", _NOT_ANNOUNCING))
    return findings


_MULTICAST_BLOCKED = (
    "answers unicast queries but its multicast announcements do not arrive: multicast is blocked on this network "
    "(the node falls back to asking its last known hosts)"
)
_NOT_ANNOUNCING = (
    "is not heard on the LAN (neither multicast nor unicast on UDP 5353): its node is off, its discovery is off, "
    "or a firewall blocks UDP 5353"
)


async def _check_address(identity: Identity, peer: TrustedPeer, address: str) -> list[Finding]:
    host, port = split_host_port(address)
    source = await asyncio.to_thread(route_source, host)
    if source is None:
        return [Finding(peer.name, "no-route", f"no route to {host}: this machine has no network path to it")]
    findings = []
    iface = interface_of(source)
    if iface and is_vpn(iface):
        text = f"traffic to {host} leaves through the VPN interface {iface}, not the LAN: allow local network access"
        findings.append(Finding(peer.name, "vpn", text))
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_S)
        writer.transport.abort()
    except ConnectionRefusedError:
        text = f"nothing listens at {address}: its node is not running (start it there with `noizylab start`)"
        return [*findings, Finding(peer.name, "not-listening", text)]
    except TimeoutError:
        text = f"no answer from {address} within {CONNECT_S:g} s: a firewall drops it, or the machine is off or asleep"
        return [*findings, Finding(peer.name, "no-answer", text)]
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return [*findings, Finding(peer.name, "no-route", f"no route to {host}: it is off or on another network")]
        return [*findings, Finding(peer.name, "no-answer", f"cannot connect to {address}: {exc.strerror or exc}")]
    return [*findings, await _check_handshake(identity, peer, address)]


async def _check_handshake(identity: Identity, peer: TrustedPeer, address: str) -> Finding:
    async with secure_channel(identity, peer.cert_pem, address, pins_keys=peer.pins_keys) as channel:
        try:
            request = pb.HeartbeatRequest(sender_id=identity.node_id)
            await pb_grpc.NodeStub(channel).Heartbeat(request, timeout=CONNECT_S)
        except grpc.aio.AioRpcError:
            pass
        else:
            return Finding(peer.name, "reachable", f"reachable at {address} (the mTLS handshake proved it)")
    try:
        shown = fingerprint(await fetch_certificate(address, CONNECT_S))
    except (OSError, TimeoutError, TransportError):
        shown = b""
    if shown and shown != peer.fingerprint:
        text = f"a different machine answers at {address}: the address now belongs to another node"
        return Finding(peer.name, "wrong-machine", text)
    text = f"refused the handshake at {address}: it no longer trusts this machine (pair again) or a firewall cuts TLS"
    return Finding(peer.name, "handshake-refused", text)
