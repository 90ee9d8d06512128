"""Certificate renewal: this node's TLS leaf is re-issued at two thirds of its life, without re-pairing.

The node ID names the key (``nodeid.py``) and peers trust chains to this node's anchor (``identity.py``), so a new
leaf of the same key is accepted by every peer at once. Nothing open is dropped: the gRPC server's credentials are
re-read before each handshake (``transport._dynamic``), so new connections get the new leaf while those already
open keep theirs; the registry makes fresh client channels for new calls and leaves the old ones to their calls
(``Registry.channel``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from noizylab_desktop.core.identity import Identity

logger = logging.getLogger(__name__)


class Renewal:
    """Renews ``identity``'s leaf for ``lifetime_s`` seconds whenever it reaches two thirds of its life."""

    name = "renewal"

    def __init__(self, identity: Identity, lifetime_s: float, renewed: Callable[[], None] = lambda: None) -> None:
        self.identity = identity
        self.lifetime_s = lifetime_s
        self.renewed = renewed  # told after each renewal (the registry's channels follow)
        self.count = 0

    async def run(self) -> None:
        """Renew for ever; a leaf is issued first if there is none."""
        while True:
            leaf = self.identity.leaf
            wait = 0.0 if leaf is None else leaf.renew_at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            # Signing is a millisecond of ECDSA: fine on the loop.
            leaf = self.identity.renew(self.lifetime_s)
            self.count += 1
            self.renewed()
            logger.info("renewed this node's certificate: valid until %s", time.ctime(leaf.expires_at))
