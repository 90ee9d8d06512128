"""The update repository through TUF (tufup's client on python-tuf): what is newer, and its verified download.

Every answer rests on signed metadata: ``root`` (the keys, first trusted from the ``_update/root.json`` the install
shipped with), ``timestamp`` (fresh, short-lived), ``snapshot`` and ``targets`` (each archive's length and SHA-256).
python-tuf refuses metadata that is unsigned, expired, or older than what this install has already seen (a
rollback), and a download whose length or hash differs from the signed one. Each refusal becomes one
``UpdateError`` line here; nothing is written into the app folder before it passes.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noizylab_desktop.core.errors import UpdateError
from noizylab_desktop.services.update.install import ROOT_FILE, InstalledApp

logger = logging.getLogger(__name__)

# (bytes so far, bytes in all) of a download
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Offer:
    """A newer version the repository signs for this app."""

    version: str
    size: int
    filename: str


class Repo:
    """This install's view of the update repository at ``url`` (``url/metadata/``, ``url/targets/``)."""

    def __init__(self, app: InstalledApp, url: str) -> None:
        self.app = app
        self.url = url.rstrip("/")
        self._client: Any = None

    def _open(self) -> Any:
        """tufup's client, with this install's trusted metadata (seeded from the root the build shipped with)."""
        _without_setuptools()
        from tufup.client import Client

        trusted_root = self.app.metadata_dir / "root.json"
        if not trusted_root.exists():
            shipped = self.app.dir / ROOT_FILE
            if not shipped.is_file():
                raise UpdateError(f"{self.app.dir} carries no {ROOT_FILE}: it was not built with packaging/release.py")
            self.app.metadata_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shipped, trusted_root)
        self.app.downloads_dir.mkdir(parents=True, exist_ok=True)
        try:
            return Client(
                app_name=self.app.build.app,
                app_install_dir=self.app.dir,
                current_version=self.app.version,
                metadata_dir=self.app.metadata_dir,
                metadata_base_url=f"{self.url}/metadata/",
                target_dir=self.app.downloads_dir,
                target_base_url=f"{self.url}/targets/",
            )
        except Exception as exc:  # python-tuf raises its own tree and plain ValueErrors for a bad local root
            raise refusal(exc, self.url) from exc

    def newest(self) -> Offer | None:
        """The newest final release above the installed version that has not failed here; None when there is none."""
        from packaging.version import Version

        self._client = client = self._open()
        try:
            client.refresh()
        except Exception as exc:
            raise refusal(exc, self.url) from exc
        installed = Version(self.app.version)
        failed = {Version(v) for v in self.app.state().failed}
        newer = [
            meta
            for meta in client.trusted_target_metas
            if meta.name == self.app.build.app
            and meta.is_archive
            and meta.version is not None
            and meta.version > installed
            and not meta.version.is_prerelease
            and meta.version not in failed
        ]
        if not newer:
            return None
        best = max(newer)
        info = client.get_targetinfo(best)
        return Offer(str(best.version), int(info.length), best.filename)

    def download(self, offer: Offer, progress: Progress | None = None) -> Path:
        """The verified archive of ``offer`` (from the download cache when a verified copy is there)."""
        client = self._client
        if client is None:
            raise UpdateError("check for updates before downloading one")
        info = client.get_targetinfo(offer.filename)
        if info is None:
            raise UpdateError(f"the repository no longer signs {offer.filename}")
        try:
            cached = client.find_cached_target(targetinfo=info)
            if cached:
                return Path(cached)
            if progress is not None:
                client._fetcher.attach_progress_hook(
                    hook=lambda bytes_downloaded, bytes_expected: progress(bytes_downloaded, bytes_expected),
                    bytes_expected=info.length,
                )
            return Path(client.download_target(targetinfo=info))
        except Exception as exc:
            raise refusal(exc, self.url, offer.filename) from exc


def _without_setuptools() -> None:
    """Let ``import tufup`` work where setuptools is absent: the frozen app leaves it out (packaging/noizylab.spec).

    tufup's package imports its release side, which imports ``setuptools.config.expand`` for a feature only the
    release tool uses (reading a version attribute); the client never touches it. Empty modules stand in.
    """
    try:
        importlib.import_module("setuptools.config.expand")
    except ImportError:
        for name in ("setuptools", "setuptools.config", "setuptools.config.expand"):
            if sys.modules.get(name) is None:
                sys.modules[name] = types.ModuleType(name)


def refusal(exc: BaseException, url: str, what: str = "") -> UpdateError:
    """One line for a failure of TUF or of the network; the installed version is untouched by any of them."""
    from tuf.api import exceptions as tuf_errors

    kept = "the installed version stays"
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UpdateError):
        return exc
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return UpdateError(f"the update repository's signed metadata has expired ({detail}): refused; {kept}")
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return UpdateError(
            f"the update repository offers older metadata than this install has seen, a rollback ({detail}): "
            f"refused; {kept}"
        )
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return UpdateError(f"the update repository's metadata is not signed by the trusted keys: refused; {kept}")
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError | tuf_errors.DownloadLengthMismatchError):
        return UpdateError(f"{what or 'a download'} does not match its signed length and hash: refused; {kept}")
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        return UpdateError(f"the update repository at {url} answered {detail}: {kept}")
    if isinstance(exc, tuf_errors.DownloadError | OSError):
        return UpdateError(f"cannot reach the update repository at {url} ({detail}): {kept}")
    if isinstance(exc, tuf_errors.RepositoryError):
        return UpdateError(f"the update repository's metadata is not valid ({detail}): refused; {kept}")
    return UpdateError(f"the update check failed ({type(exc).__name__}: {detail}): {kept}")
