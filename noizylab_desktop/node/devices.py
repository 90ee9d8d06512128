"""What a member does when the grid marks a device lost: rotate what that device could have known.

A lost laptop holds copies of this machine's API tokens (a dashboard's config, a shell history) and may have seen
its open invite codes; both are revoked here at once. The files already on the lost machine's disk are out of
reach: the command line says so plainly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.pairing import PairingServer

logger = logging.getLogger(__name__)

FILES_REMAIN = (
    "files already on its disk remain there: removing it cannot reach them "
    "(its disk encryption and a remote wipe are the way)"
)


@dataclass(frozen=True)
class Rotated:
    """What was revoked on this machine after a loss."""

    tokens: int
    invites: int


def rotate_after_loss(paths: Paths, pairing: PairingServer) -> Rotated:
    """Revoke every live API token of this machine and close its open invite codes."""
    # Imported here: the token store is the metrics feature's, and a node without a loss never needs it.
    from noizylab_desktop.services.metrics.feature import TOKENS_FILE
    from noizylab_desktop.services.metrics.tokens import TokenStore

    store = TokenStore(paths.state_dir / TOKENS_FILE)
    tokens = 0
    try:
        for token in store.list():
            if token.revoked_at is None and token.expires_at > time.time():
                store.revoke(token.id)
                tokens += 1
    finally:
        store.close()
    invites = pairing.close_invites()
    logger.warning(
        "a device of the grid was lost: revoked %d API tokens and closed %d open invite codes here", tokens, invites
    )
    return Rotated(tokens, invites)
