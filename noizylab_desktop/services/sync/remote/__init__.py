"""The other side of a share, over SFTP (asyncssh): a NOIZYLAB peer's embedded server with its own calls
(``PeerRemote``), or any SSH server (``SshRemote``); both are ``RemoteStore``s, and a peer is a ``PeerStore``.

Against a NOIZYLAB peer the listing with block hashes comes from its ``Sync.Index`` call and pushed temp files are
verified by its ``Sync.Hash``, so only changed blocks travel. Against a plain SSH server whole files travel, the
listing is an SFTP walk whose changed files are hashed with ``sha256sum`` over SSH.

- ``store.py``: the protocols and the errors; ``connection.py``: the connection and path spelling;
  ``sftp_files.py``: file operations over SFTP; ``ssh.py`` and ``peer.py``: the two kinds; ``calls.py``: a peer's
  calls and their gRPC client.
"""

from noizylab_desktop.services.sync.remote.calls import GrpcPeer, PeerCalls
from noizylab_desktop.services.sync.remote.connection import PARALLEL_FILES, PARALLEL_REQUESTS, Target
from noizylab_desktop.services.sync.remote.peer import PeerRemote
from noizylab_desktop.services.sync.remote.ssh import SshRemote
from noizylab_desktop.services.sync.remote.store import (
    ChangedWhileSent,
    PeerStore,
    RemoteStore,
    RemoteUnreachable,
    SmallFiles,
)

__all__ = [
    "PARALLEL_FILES",
    "PARALLEL_REQUESTS",
    "ChangedWhileSent",
    "GrpcPeer",
    "PeerCalls",
    "PeerRemote",
    "PeerStore",
    "RemoteStore",
    "RemoteUnreachable",
    "SmallFiles",
    "SshRemote",
    "Target",
]
