"""Secrets in the OS keychain through ``keyring``; never a plaintext fallback.

``SecretStore`` is the interface; ``KeyringStore`` is the real one (Secret Service on Linux, Keychain on macOS,
Credential Manager on Windows). ``Vault`` puts small secrets straight into the store and large ones (Windows holds at
most 2,560 bytes a secret) on disk, encrypted with AES-GCM under a wrapping key that lives in the store.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import keyring
import keyring.backend
import keyring.core
import keyring.errors

from noizylab_desktop.core.config import atomic_write
from noizylab_desktop.core.errors import KeychainError

logger = logging.getLogger(__name__)

# Windows' Credential Manager caps a secret at 2,560 bytes (CRED_MAX_CREDENTIAL_BLOB_SIZE), and keyring stores the
# base64 text as UTF-16: 2 bytes a character, 4 characters per 3 bytes of secret. So 960 bytes go in directly; the
# old limit of 1,800 counted base64 alone and would have been refused there (Wine does not enforce the cap).
WINDOWS_BLOB_CAP = 2560
# How long a call waits for a Secret Service that went away mid-run to be back (its daemon ended, and D-Bus
# activation or whatever keeps it starts it again): a moment, so a keychain that is really gone still fails soon.
RETURN_WAIT_S = 5.0
DIRECT_LIMIT = WINDOWS_BLOB_CAP // 2 // 4 * 3
_REFUSED_BACKENDS = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")
NO_KEYCHAIN = (
    "no OS keychain is available ({why}): start one (on Linux a Secret Service such as gnome-keyring) "
    "or use `make run`, which starts a private one"
)


def _no_backend() -> str:
    """What to install or start where ``keyring`` found no keychain to talk to."""
    if sys.platform == "darwin":
        return "no OS keychain is available (the macOS Keychain cannot be reached): run NOIZYLAB in your login session"
    if sys.platform == "win32":
        return (
            "no OS keychain is available (the Windows Credential Manager cannot be reached): "
            "run NOIZYLAB as a signed-in user"
        )
    return (
        "no OS keychain is available (no Secret Service answers on this session's D-Bus): install gnome-keyring "
        "or KWallet and start it in this session (logging in to a desktop does), or use `make run`, which starts a "
        "private one"
    )


class SecretStore(Protocol):
    """Named secrets kept outside the file system."""

    def get(self, name: str) -> bytes | None: ...

    def set(self, name: str, value: bytes) -> None: ...

    def delete(self, name: str) -> None: ...


def _usable(backend: keyring.backend.KeyringBackend) -> bool:
    if backend.__class__.__module__.startswith(_REFUSED_BACKENDS):
        return False
    chained = getattr(backend, "backends", None)
    if chained is not None:
        return any(_usable(b) for b in chained)
    return True


T = TypeVar("T")


def _passing(exc: BaseException) -> str:
    """What passing state of the Secret Service ``exc`` shows, if any: "away" when it left the bus (or never
    answered the call), "vanished" when an object it named a moment ago is gone (an item replaced or deleted between
    a search and a read by another process: "Item does not exist!"); "" when it refused. Asking again answers."""
    try:
        from secretstorage.exceptions import ItemNotFoundException, SecretServiceNotAvailableException
    except ImportError:  # not Linux: the other backends have no such state
        return ""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SecretServiceNotAvailableException):
            return "away"
        if isinstance(seen, ItemNotFoundException):
            return "vanished"
        seen = seen.__cause__ or seen.__context__
    return ""


VANISHED_TRIES = 50  # a search and a read, each time racing a writer of the same item: one wins soon


def _patiently(call: Callable[[], T]) -> T:
    """``call()``, tried again for a moment while the Secret Service is away (a gnome-keyring daemon that crashed
    mid-call is started again by D-Bus activation or its keeper, with the same keyring on disk), and at once, a
    number of times, when the item it found was gone by the time it read it (however slow the machine)."""
    deadline = time.monotonic() + RETURN_WAIT_S
    vanished = 0
    while True:
        try:
            return call()
        except Exception as exc:
            state = _passing(exc)
            if state == "vanished" and vanished < VANISHED_TRIES:
                vanished += 1
                continue
            if state != "away" or time.monotonic() >= deadline:
                raise
            logger.info("the Secret Service went away (%s); asking again", exc)
            time.sleep(0.2)


WINDOWS_BACKEND = "keyring.backends.Windows.WinVaultKeyring"
SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"


def _keychain() -> keyring.backend.KeyringBackend:
    """keyring's backend. The platform's own is taken by name, unless the person named another
    (``PYTHON_KEYRING_BACKEND`` or keyringrc.cfg): keyring's discovery imports every installed backend to rank them
    (the macOS one alone, through ctypes, cost each Linux command 65 ms; the Secret Service's D-Bus stack cost each
    Windows process ~1.6 s under Wine). On Linux the Secret Service is taken when one answers; otherwise (KWallet
    alone, say) keyring's discovery chooses, as it does on macOS."""
    if "PYTHON_KEYRING_BACKEND" not in os.environ:
        if sys.platform == "win32":
            _choose_by_name(WINDOWS_BACKEND)
        elif sys.platform.startswith("linux"):
            _choose_by_name(SECRET_SERVICE_BACKEND)
    return keyring.get_keyring()


@functools.cache
def _choose_by_name(name: str) -> None:
    """Set keyring's backend (once a process) to keyringrc.cfg's choice, else ``name`` where it is usable here."""
    backend = _working(lambda: keyring.core.load_config() or keyring.core.load_keyring(name))
    if backend is not None:  # else keyring's discovery looks for another
        keyring.set_keyring(backend)


def _working(load: Callable[[], keyring.backend.KeyringBackend]) -> keyring.backend.KeyringBackend | None:
    """The backend ``load`` gives, where it can work here now; None where it raises (keyring's backends raise what
    they meet: ImportError, RuntimeError, D-Bus errors), or its priority does (no Secret Service on the bus)."""
    try:
        backend = load()
        backend.priority  # noqa: B018
    except Exception:
        return None
    return backend


def _secret_service_back() -> keyring.backend.KeyringBackend | None:
    """On Linux, where the session bus answers but no Secret Service is on it: the Secret Service once it is back,
    waited for ``RETURN_WAIT_S`` (a gnome-keyring that aborted is started again by D-Bus activation, systemd or
    whatever keeps it; a node must not fail to start in that moment). None at once where there is no session bus."""
    if not sys.platform.startswith("linux") or "PYTHON_KEYRING_BACKEND" in os.environ:
        return None
    try:
        import secretstorage

        secretstorage.dbus_init().close()
    except Exception:  # no session bus (or no secretstorage): nothing will come back
        return None
    logger.info("no Secret Service on the session bus: waiting up to %.0f s for one", RETURN_WAIT_S)
    deadline = time.monotonic() + RETURN_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.2)
        backend = _working(lambda: keyring.core.load_keyring(SECRET_SERVICE_BACKEND))
        if backend is not None:
            keyring.set_keyring(backend)
            return backend
    return None


def _lock_file(service: str) -> Path | None:
    """Where the processes of one user serialise their calls on ``service``'s items (Linux only, see ``_holding``)."""
    if not sys.platform.startswith("linux"):
        return None
    folder = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    digest = hashlib.sha256(service.encode()).hexdigest()[:16]
    return Path(folder) / f"noizylab-keychain-{os.getuid()}-{digest}.lock"


@contextlib.contextmanager
def _holding(lock: Path | None, *, exclusive: bool) -> Iterator[None]:
    """Shared for reads, exclusive for writes and deletes, across this user's processes. gnome-keyring aborts (a
    GLib assertion in invoke_get_property_in_idle_cb, taking every secret's session with it) when an item is read
    while another process replaces or deletes it, and a search can name an item gone by the read: a node rotating
    its key while its own command line reads it did both. A lock that cannot be had is skipped, not fatal."""
    if lock is None:
        yield
        return
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        logger.debug("keychain calls go unserialised: %s", exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


class KeyringStore:
    """The OS keychain, one service name per node home."""

    def __init__(self, keychain_id: str) -> None:
        self.service = f"noizylab-desktop:{keychain_id}"
        backend = _keychain()
        if not _usable(backend):
            backend = _secret_service_back() or backend
        if not _usable(backend):
            raise KeychainError(_no_backend())
        self._backend = backend
        self._lock = _lock_file(self.service)

    def get(self, name: str) -> bytes | None:
        """The secret called ``name``, or None."""
        try:
            with _holding(self._lock, exclusive=False):
                text = _patiently(lambda: self._backend.get_password(self.service, name))
        except Exception as exc:  # backends raise their own types (dbus, secretstorage, win32)
            raise KeychainError(NO_KEYCHAIN.format(why=f"reading {name!r} failed: {exc}")) from exc
        return None if text is None else base64.b64decode(text)

    def set(self, name: str, value: bytes) -> None:
        """Store ``value`` as ``name``."""
        try:
            encoded = base64.b64encode(value).decode()
            with _holding(self._lock, exclusive=True):
                _patiently(lambda: self._backend.set_password(self.service, name, encoded))
        except Exception as exc:
            raise KeychainError(NO_KEYCHAIN.format(why=f"writing {name!r} failed: {exc}")) from exc

    def delete(self, name: str) -> None:
        """Forget ``name``; absent is fine."""
        try:
            with _holding(self._lock, exclusive=True):
                _patiently(lambda: self._backend.delete_password(self.service, name))
        except keyring.errors.PasswordDeleteError:
            return
        except Exception as exc:
            raise KeychainError(NO_KEYCHAIN.format(why=f"deleting {name!r} failed: {exc}")) from exc


class Vault:
    """Secrets of any size: small ones in the store, large ones encrypted on disk under a stored wrapping key."""

    def __init__(self, store: SecretStore, folder: Path) -> None:
        self.store = store
        self.folder = folder

    def _blob(self, name: str) -> Path:
        return self.folder / f"{name}.sealed"

    def get(self, name: str) -> bytes | None:
        """The secret, unwrapped if it was large."""
        blob = self._blob(name)
        if blob.exists():
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            key = self.store.get(f"{name}.wrap")
            if key is None:
                raise KeychainError(f"the keychain lost the key that opens {blob}: delete it to start afresh")
            data = blob.read_bytes()
            try:
                return AESGCM(key).decrypt(data[:12], data[12:], name.encode())
            except InvalidTag as exc:
                raise KeychainError(f"{blob} does not match its key in the keychain: delete it") from exc
        return self.store.get(name)

    def set(self, name: str, value: bytes) -> None:
        """Keep ``value``; wrapped on disk when it is too large for every platform's keychain."""
        if len(value) <= DIRECT_LIMIT:
            self.store.set(name, value)
            self._blob(name).unlink(missing_ok=True)
            return
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        self.store.set(f"{name}.wrap", key)
        atomic_write(self._blob(name), nonce + AESGCM(key).encrypt(nonce, value, name.encode()))
        self.store.delete(name)

    def delete(self, name: str) -> None:
        """Forget ``name`` wherever it was kept."""
        self.store.delete(name)
        self.store.delete(f"{name}.wrap")
        self._blob(name).unlink(missing_ok=True)
