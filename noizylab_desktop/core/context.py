"""``NodeContext``: what a feature may use of the node it runs in, and nothing more.

The node (``node/node.py``) builds one after its kernel is up and hands it to every feature and every tray part, as
Syncthing's ``NewModel`` takes its dependencies as arguments: a feature never sees the ``Node``, another feature, the
command line or the UI, so it can be built in a test from a context made there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.core.config import Paths, Settings
    from noizylab_desktop.core.events import EventBus
    from noizylab_desktop.core.feature import Figure
    from noizylab_desktop.core.identity import Identity
    from noizylab_desktop.core.permissions import Permissions
    from noizylab_desktop.core.registry import Registry
    from noizylab_desktop.core.sessions import Sessions
    from noizylab_desktop.core.supervisor import Supervisor
    from noizylab_desktop.core.totp import Totp
    from noizylab_desktop.core.trust import TrustStore


@dataclass(frozen=True)
class NodeContext:
    """The node's kernel as a feature sees it; the callables answer for the node as it is when called."""

    settings: Settings
    paths: Paths
    identity: Identity
    trust: TrustStore
    registry: Registry
    permissions: Permissions
    bus: EventBus
    supervisor: Supervisor
    # Every peer's open streams and connections, ended on unpair and deny: a server registers what it holds open.
    sessions: Sessions
    # The TOTP step-up that sensitive actions ask for (``core.totp.require_step_up``): exposing a port beyond loopback.
    totp: Totp
    # ``publish_port("http", 8080)``: a port the feature bound, shown by ``status`` and in this node's info.
    publish_port: Callable[[str, int], None]
    # Every feature's figures as they are now (one feature failing leaves the others'), for the metrics export.
    figures: Callable[[], Sequence[Figure]]
    # This node as peers see it, its load per CPU, and how long it has run.
    info: Callable[[], pb.NodeInfo]
    load: Callable[[], float]
    uptime_s: Callable[[], float]

    @property
    def name(self) -> str:
        """This node's name, as peers and the person see it."""
        return self.settings.name
