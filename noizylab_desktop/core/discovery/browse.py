"""A short look at who announces on the LAN, for commands (``pair join --list``, ``doctor``) that run no node."""

from __future__ import annotations

import asyncio

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from noizylab_desktop.core.discovery.records import SERVICE_TYPE, Announcement, read


async def nearby(seconds: float = 2.0) -> list[Announcement]:
    """The nodes heard announcing by multicast within ``seconds``, one per tag."""
    zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    found: dict[str, Announcement] = {}
    pending: set[asyncio.Task[None]] = set()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if await info.async_request(zc.zeroconf, int(seconds * 1000)):
            announcement = read(info.properties, info.parsed_addresses(IPVersion.V4Only), info.port or 0)
            if announcement is not None:
                found[announcement.tag] = announcement

    def changed(zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            task = asyncio.ensure_future(resolve(name))
            pending.add(task)
            task.add_done_callback(pending.discard)

    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[changed])
    try:
        await asyncio.sleep(seconds)
    finally:
        for task in list(pending):
            task.cancel()
        await browser.async_cancel()
        await zc.async_close()
    return sorted(found.values(), key=lambda a: a.hosts)
