"""The one exception tree of NOIZYLAB Desktop.

Every error a person can act on carries a one-line message that names the thing and the fix. Third-party
errors are converted once, at the edge, with ``raise ... from exc``.

    NoizyLabError                 base: .message is shown to the user, never a traceback
    ├── ConfigError               a settings file or option that cannot be used
    ├── KeychainError             no OS keychain, or it refused a read or write
    ├── IdentityError             the node's certificate or key is missing or damaged
    ├── PairingError              wrong, expired or reused invite codes; failed proofs
    │   └── PairingRateLimited    more than five wrong codes in a minute
    ├── TransportError            a peer that cannot be reached, refused the handshake or timed out
    │   ├── NotRunningError       no node is running for this home
    │   └── WinRMError            a Windows host over WinRM: unreachable, TLS failed, login refused, no stored login
    ├── PeerError                 a peer name or ID that matches none (or several) of the paired peers
    ├── PermissionRefusedError    a paired peer asked for something this node does not allow it
    ├── StepUpError               a sensitive action with a wrong, reused or rate-limited TOTP code
    │   └── StepUpNeeded          a sensitive action with no TOTP code while TOTP is on and no step-up holds
    ├── InvalidRequestError       a request with a value out of bounds (a size past 2**62, a NaN, a NUL in a path)
    ├── LauncherError             start/stop problems: already running, did not come up in time
    ├── DisplayUnavailableError   the tray was asked for where there is no display or system tray
    ├── SyncError, TaskError, DisplayError, ClipboardError, MetricsError, TunnelError, DaskError, FilesError,
    │   UpdateError               (each feature's own)
    │   └── MergeError (a SyncError)      a sync conflict that cannot be merged or resolved as asked
    │   └── TokenError (a MetricsError)   an API token name that cannot be used, or one to revoke that is not there
"""

from __future__ import annotations


class NoizyLabError(Exception):
    """Base of every error NOIZYLAB raises on purpose; ``message`` is one line for the user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(NoizyLabError):
    """A settings file or command-line option that cannot be used."""


class KeychainError(NoizyLabError):
    """The OS keychain is missing or refused an operation; never answered with a plaintext fallback."""


class IdentityError(NoizyLabError):
    """The node's certificate or private key is missing or damaged."""


class PairingError(NoizyLabError):
    """An invite code that is wrong, expired, reused or rate limited, or a proof that did not verify."""


class PairingRateLimited(PairingError):
    """Too many wrong invite codes in the last minute."""


class TransportError(NoizyLabError):
    """A peer that cannot be reached, refused the TLS handshake, or did not answer in time."""


class NotRunningError(TransportError):
    """No node is running for this home folder."""


class WinRMError(TransportError):
    """A Windows host reached over WinRM (no NOIZYLAB there) could not be reached, verified or logged in to."""


class PeerError(NoizyLabError):
    """A peer reference that matches no paired peer, or more than one."""


class PermissionRefusedError(NoizyLabError):
    """A paired peer asked for something (tasks, clipboard, screen) this node does not allow it."""


class StepUpError(NoizyLabError):
    """A TOTP code that cannot be used: wrong, used already, or one try too many; or TOTP set up twice."""


class StepUpNeeded(StepUpError):
    """A sensitive action (a grant, a pairing, an exposure beyond loopback) asked for without a TOTP code."""


class InvalidRequestError(NoizyLabError):
    """A request holding a value no handler can use; answered ``INVALID_ARGUMENT`` before any handler runs."""


class LauncherError(NoizyLabError):
    """The background node could not be started or stopped."""


class DisplayUnavailableError(NoizyLabError):
    """The tray app was started where there is no display or no system tray."""


class SyncError(NoizyLabError):
    """Folder sync failed (filled in by the sync issue)."""


class MergeError(SyncError):
    """A sync conflict that cannot be merged or resolved as asked; nothing was changed."""


class TaskError(NoizyLabError):
    """A task failed to start, route or finish (filled in by the tasks issue)."""


class DisplayError(NoizyLabError):
    """Remote desktop failed (filled in by the remote-desktop issue)."""


class ClipboardError(NoizyLabError):
    """Clipboard sync failed (filled in by the clipboard issue)."""


class TunnelError(NoizyLabError):
    """A tunnel that cannot be opened: its local port is taken, or nothing answers on the peer's port."""


class MetricsError(NoizyLabError):
    """Metrics collection or export failed (filled in by the metrics issue)."""


class TokenError(MetricsError):
    """An API token that cannot be created or revoked as asked."""


class DaskError(NoizyLabError):
    """The grid's Dask cluster could not start, stop, admit a member or issue a certificate."""


class FilesError(NoizyLabError):
    """A file to send that cannot be read, or one a peer could not take (no room, gone away mid-way)."""


class UpdateError(NoizyLabError):
    """A self-update refused or failed: unsigned, tampered, expired or rolled-back metadata, no install to update."""
