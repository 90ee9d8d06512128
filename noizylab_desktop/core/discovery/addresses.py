"""This machine's addresses, and which interface a packet to a host would leave by (VPNs included)."""

from __future__ import annotations

import ipaddress
import re
import socket

import psutil

# Interface names that VPN clients create: tun/tap (OpenVPN), wg (WireGuard), utun (macOS), ppp, ipsec, and the
# mesh VPNs' own. A route to a LAN peer through one of these means the VPN captured the LAN's traffic.
_VPN = re.compile(r"^(tun|tap|wg|utun|ppp|ipsec|tailscale|zt|nordlynx|proton|mullvad|gpd|cscotun)", re.IGNORECASE)


def local_hosts(limit: int = 3) -> list[str]:
    """This machine's non-loopback IPv4 addresses on interfaces that are up (up to ``limit``), else loopback."""
    found = []
    stats = psutil.net_if_stats()
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        found += [a.address for a in addresses if a.family == socket.AF_INET and not a.address.startswith("127.")]
    return found[:limit] or ["127.0.0.1"]


def is_vpn(interface: str) -> bool:
    """Whether ``interface`` is named as VPN clients name theirs."""
    return bool(_VPN.match(interface))


def vpn_interfaces() -> list[str]:
    """VPN-like interfaces that are up."""
    return sorted(name for name, st in psutil.net_if_stats().items() if st.isup and is_vpn(name))


def route_source(host: str) -> str | None:
    """The local address a packet to ``host`` would leave from, or None when there is no route to it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))  # UDP connect sends nothing: it only asks the routing table
        except OSError:
            return None
        return str(probe.getsockname()[0])


def interface_of(address: str) -> str | None:
    """The interface that holds ``address``."""
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == address for a in addresses):
            return name
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
