"""Unicast DNS-SD queries: the fallback where multicast is blocked (guest Wi-Fi, some VPNs and switches).

A query sent straight to a host's port 5353 from an ordinary port is a "legacy unicast" query (RFC 6762 §6.7): the
responder answers to that port, by unicast, so nothing depends on multicast getting through. The node asks the
hosts it last knew a peer at (names resolved afresh each time), and the doctor asks a peer's hosts to tell "nothing
announces there" from "multicast does not get here".
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import replace

from zeroconf._dns import DNSAddress, DNSPointer, DNSQuestion, DNSService, DNSText
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_PTR

from noizylab_desktop.core.discovery.records import SERVICE_TYPE, Announcement, read

MDNS_PORT = 5353


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" from a host without a responder: nothing will come.
        self.queue.put_nowait(b"")


def _query() -> bytes:
    out = DNSOutgoing(_FLAGS_QR_QUERY, multicast=False)
    out.add_question(DNSQuestion(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN))
    return out.packets()[0]


def announcements(data: bytes, source: str = "", via: str = "unicast") -> list[Announcement]:
    """The NOIZYLAB announcements in one DNS response (answers and additionals together)."""
    try:
        incoming = DNSIncoming(data)
    except Exception:  # a damaged or foreign packet: zeroconf's parser raises several kinds
        return []
    if not incoming.is_response():
        return []
    records = incoming.answers()
    instances = {r.alias for r in records if isinstance(r, DNSPointer) and r.name == SERVICE_TYPE}
    found = []
    for name in instances:
        srv = next((r for r in records if isinstance(r, DNSService) and r.name == name), None)
        txt = next((r for r in records if isinstance(r, DNSText) and r.name == name), None)
        if srv is None or txt is None:
            continue
        hosts = [
            socket.inet_ntoa(r.address)
            for r in records
            if isinstance(r, DNSAddress) and r.name == srv.server and len(r.address) == 4
        ]
        announcement = read(_txt(txt.text), hosts or ([source] if source else []), srv.port)
        if announcement is not None:
            found.append(replace(announcement, via=via))
    return found


def _txt(raw: bytes) -> dict[str, str]:
    """TXT strings (length-prefixed ``key=value``) as a dict."""
    props: dict[str, str] = {}
    at = 0
    while at < len(raw):
        size = raw[at]
        item = raw[at + 1 : at + 1 + size].decode("utf-8", "replace")
        at += 1 + size
        key, _, value = item.partition("=")
        props.setdefault(key, value)
    return props


async def ask(host: str, timeout: float = 1.0) -> list[Announcement]:
    """The NOIZYLAB nodes whose responder at ``host`` answers a unicast query within ``timeout`` (none if silent)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, MDNS_PORT, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    address = str(infos[0][4][0])
    try:
        transport, replies = await loop.create_datagram_endpoint(_Replies, remote_addr=(address, MDNS_PORT))
    except OSError:
        return []
    try:
        transport.sendto(_query())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    data = await replies.queue.get()
                    if not data:
                        return []
                    found = announcements(data, source=str(address))
                    if found:
                        return found
    finally:
        transport.close()
    return []
