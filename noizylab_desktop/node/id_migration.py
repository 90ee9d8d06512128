"""Once per home: the stores that name peers by their old IDs (certificate hashes) are re-keyed by key IDs.

Node IDs used to be the SHA-256 of a node's certificate; now they are the SHA-256 of its public key
(``core/nodeid.py``). The trust store knows each old ID's certificate, hence its key: ``legacy_ids`` reads that
mapping without changing anything; the other stores are re-keyed with it first (each change is idempotent), and
the trust store last (``key_rows``). A crash in between leaves the mapping in place, and the next start finishes.
"""

from __future__ import annotations

import logging

from noizylab_desktop.core import permissions
from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.trust import key_rows, legacy_ids
from noizylab_desktop.services.sync import store as sync_store
from noizylab_desktop.services.tunnel import store as tunnel_store

logger = logging.getLogger(__name__)


def migrate_home(paths: Paths) -> int:
    """Re-key every store by key IDs, the trust store last; how many peers had old IDs. Blocking (files)."""
    ids = legacy_ids(paths.trust_db)
    if not ids:
        return 0
    permissions.migrate_ids(paths.state_dir / "permissions.sqlite", ids)
    tunnel_store.migrate_ids(paths.state_dir / "tunnels.json", ids)
    sync_store.migrate_ids(paths.state_dir / "sync" / "shares.sqlite", ids)
    key_rows(paths.trust_db)
    logger.info("%d paired peers are now known by their keys instead of their certificates", len(ids))
    return len(ids)
