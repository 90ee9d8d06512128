"""The ``[discovery]`` table of the node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting


@section("discovery")
@dataclass(frozen=True)
class DiscoverySettings:
    # Announce this node on the LAN (DNS-SD) and listen for the others; off, peers are found only at the addresses
    # they were paired at or last heard from.
    enabled: bool = setting(True)
    # How often this machine's addresses are checked (a change is announced at once) and unreachable peers are
    # asked for by unicast, the fallback where multicast is blocked.
    poll_s: float = setting(1.0, above=0, high=60, unit="seconds")
    # Announce and listen only on these local IPv4 addresses (say the LAN's, not a VPN's or a café's); empty: on
    # every interface that is up. Set, discovery runs even when gRPC listens on loopback only.
    interfaces: tuple[str, ...] = setting(())
