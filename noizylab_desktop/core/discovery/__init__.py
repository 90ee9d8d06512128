"""LAN discovery: each node announces itself with DNS-SD (``_noizylab._tcp``) and listens for the others.

Discovery only suggests where a paired peer might be; the mTLS handshake, pinned to the peer's certificate, proves
who answers there (``docs/discovery.md``). The parts: ``records`` (what an announcement holds: no names),
``settings`` (``[discovery]``), ``addresses`` (this machine's interfaces), ``probe`` (unicast queries, the fallback
where multicast is blocked), ``service`` (the announcer and browser the node runs), ``doctor`` (why a peer is
unreachable). Only ``service`` and ``probe`` import zeroconf, and only when a node or a command uses them.
"""
