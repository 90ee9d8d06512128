"""Typed settings (a TOML file the user may edit) and where runtime state lives; secrets are never here.

Settings are what the person chose (name, ports, labels); state is what the node learned (trust store,
runtime file). ``--home DIR`` or ``NOIZYLAB_HOME`` puts all of one node's files under DIR, so several nodes
can run on one machine; otherwise the platform's config, state and log folders are used.
"""

from __future__ import annotations

import os
import socket
import tempfile
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.settings_schema import parse_section, section, setting, table_keys

APP = "noizylab"
DEFAULT_GRPC_PORT = 50051
DEFAULT_SFTP_PORT = 50022
DEFAULT_HTTP_PORT = 8080


@dataclass(frozen=True)
class Paths:
    """Where one node keeps its settings, state and logs."""

    config_dir: Path
    state_dir: Path
    log_dir: Path
    home: Path | None = None

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        """Paths for ``home`` (or ``NOIZYLAB_HOME``), else the platform's folders."""
        chosen = home if home is not None else os.environ.get("NOIZYLAB_HOME") or None
        if chosen is not None:
            root = Path(chosen).expanduser().resolve()
            return cls(root, root / "state", root / "logs", home=root)
        return cls(
            Path(platformdirs.user_config_dir(APP, appauthor=False)),
            Path(platformdirs.user_state_dir(APP, appauthor=False)),
            Path(platformdirs.user_log_dir(APP, appauthor=False)),
        )

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def runtime_file(self) -> Path:
        return self.state_dir / "runtime.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "node.pid"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "node.lock"

    @property
    def trust_db(self) -> Path:
        return self.state_dir / "trust.sqlite"

    @property
    def cert_file(self) -> Path:
        return self.state_dir / "node-cert.pem"

    @property
    def vault_dir(self) -> Path:
        return self.state_dir / "vault"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "noizylab.log"

    def ensure(self) -> None:
        """Create the folders, private to this user."""
        for folder in (self.config_dir, self.state_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)


@section("ports")
@dataclass(frozen=True)
class Ports:
    """The ports a node listens on; 0 picks a free one at start."""

    grpc: int = setting(DEFAULT_GRPC_PORT, low=0, high=65535)
    sftp: int = setting(DEFAULT_SFTP_PORT, low=0, high=65535)
    http: int = setting(DEFAULT_HTTP_PORT, low=0, high=65535)
    pairing: int = setting(0, low=0, high=65535)


def _default_name() -> str:
    return socket.gethostname() or "noizylab-node"


def _new_keychain_id() -> str:
    return uuid.uuid4().hex


def _named(name: str) -> bool:
    return bool(name.strip())


# The file's top level: the node's own settings, beside the [ports] table and each feature's table.
@section("")
@dataclass(frozen=True)
class Settings:
    """What the person chose for this node; stored as TOML."""

    name: str = setting(default_factory=_default_name, check=_named, expect="a non-empty string", convert=str.strip)
    keychain_id: str = setting(default_factory=_new_keychain_id)
    ports: Ports = field(default_factory=Ports)
    grpc_host: str = setting("0.0.0.0", lenient=True)
    http_host: str = setting("127.0.0.1", lenient=True)
    advertise: tuple[str, ...] = setting(())
    labels: tuple[str, ...] = setting(())
    heartbeat_s: float = setting(1.0, above=0, unit="seconds")
    heartbeat_misses: int = setting(3, low=1)
    invite_ttl_s: float = setting(600.0, above=0, high=3600, unit="seconds")
    # How long a TLS certificate of this node lives; a new one is issued at two thirds of that (docs/trust.md).
    # Tests set seconds; a real grid keeps the default.
    cert_lifetime_s: float = setting(30 * 86400.0, low=2, high=365 * 86400, unit="seconds")
    # The feature tables of the TOML file ([tasks], [sync], [clipboard], [display], [metrics], ...), kept as read;
    # each feature turns its own table into a typed, validated settings object (``section``).
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        """The ``[name]`` table of the config file (empty when absent)."""
        return self.sections.get(name, {})

    def with_section(self, name: str, values: Mapping[str, Any]) -> Settings:
        """A copy with the ``[name]`` table replaced (save it with ``save_settings``)."""
        return replace(self, sections={**self.sections, name: dict(values)})

    def with_ports(self, grpc: int | None, sftp: int | None, http: int | None) -> Settings:
        """A copy with the given ports (None keeps the current one)."""
        return replace(
            self,
            ports=replace(
                self.ports,
                grpc=self.ports.grpc if grpc is None else grpc,
                sftp=self.ports.sftp if sftp is None else sftp,
                http=self.ports.http if http is None else http,
            ),
        )


def from_toml(data: dict[str, object], path: Path) -> Settings:
    """The settings a config file's parsed TOML holds, or the one-line ``ConfigError`` the loader gives."""
    ports = data.get("ports", {})
    if not isinstance(ports, dict):
        raise ConfigError(f"[ports] in {path} must be a table")
    # Any other table is a feature's, kept as read: the feature parses it (``section``).
    own = {"ports", *table_keys(Settings)}
    sections = {key: value for key, value in data.items() if isinstance(value, dict) and key not in own}
    top = {key: value for key, value in data.items() if key not in sections and key != "ports"}
    try:
        settings = parse_section(Settings, top)
        return replace(settings, ports=parse_section(Ports, ports), sections=sections)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} (in {path})") from exc


def claim_keychain_id(paths: Paths) -> str:
    """This home's keychain ID: the first process to ask picks it, every other one reads the same.

    Two processes can load a fresh home at once (a node starting while `status` polls it); each picking its own
    random ID would leave the node's key under a name the command line never looks for.
    """
    marker = paths.config_dir / ".keychain-id"
    if not marker.exists():
        paths.config_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keychain-id.", dir=paths.config_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(uuid.uuid4().hex)
            os.link(tmp, marker)  # atomic, and refuses to replace a marker another process made first
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
    return marker.read_text(encoding="ascii").strip()


def load_settings(paths: Paths) -> Settings:
    """Read the settings, writing defaults on first use so the keychain ID stays stable."""
    path = paths.config_file
    if not path.exists():
        settings = Settings(keychain_id=claim_keychain_id(paths))
        save_settings(paths, settings)
        return settings
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or delete the file") from exc
    settings = from_toml(data, path)
    if "keychain_id" not in data:
        # The keychain ID names this node's secrets; it must never change once chosen.
        settings = replace(settings, keychain_id=claim_keychain_id(paths))
        save_settings(paths, settings)
    return settings


def save_settings(paths: Paths, settings: Settings) -> None:
    """Write the settings atomically."""
    data = asdict(settings)
    data["advertise"] = list(settings.advertise)
    data["labels"] = list(settings.labels)
    sections = data.pop("sections")
    data.update({name: dict(table) for name, table in sections.items() if table})
    atomic_write(paths.config_file, tomli_w.dumps(data).encode())


def save_section(paths: Paths, name: str, values: Mapping[str, Any]) -> Settings:
    """Replace the ``[name]`` table in the config file as it is now (what the command line changed since the node
    started stays) and return the settings saved."""
    settings = load_settings(paths).with_section(name, values)
    save_settings(paths, settings)
    return settings


def update_section(paths: Paths, name: str, values: Mapping[str, Any]) -> Settings:
    """Set only ``values``' keys of the ``[name]`` table in the config file as it is now, so that what the Settings
    window or the command line wrote there since the node started stays; returns the settings saved."""
    settings = load_settings(paths)
    return save_section(paths, name, {**settings.section(name), **values})


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, even after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
