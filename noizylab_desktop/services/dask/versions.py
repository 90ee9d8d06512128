"""What this node would run a Dask worker with, read from package metadata (nothing is imported), and the check
that a cluster's members match.

The frozen app (the installers' PyInstaller build) leaves Dask out: its scheduler and workers run as ``python -m``
children, which a frozen app cannot start. There every Dask command, and a peer's probe, gets one line saying so.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import metadata

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop.core.errors import DaskError

INSTALL_HINT = "install it with `pip install 'noizylab-desktop[dask]'`"
NOT_IN_THIS_BUILD = (
    "Dask is not available in this build of NOIZYLAB (the installer's app): "
    "install NOIZYLAB with pip and the dask extra, `pip install 'noizylab-desktop[dask]'`, to use it"
)


def frozen() -> bool:
    """Whether this is the frozen app (PyInstaller sets ``sys.frozen``)."""
    return bool(getattr(sys, "frozen", False))


def missing_here(package: str) -> str:
    """The one line for a ``package`` that cannot be imported here."""
    return NOT_IN_THIS_BUILD if frozen() else f"{package} is not installed here: {INSTALL_HINT}"


def local_versions() -> dpb.DaskVersions:
    """This machine's dask, distributed and Python versions; ``missing`` says what is not installed."""
    found = dpb.DaskVersions(python=f"{sys.version_info.major}.{sys.version_info.minor}")
    if frozen():
        found.missing = NOT_IN_THIS_BUILD
        return found
    lacking = []
    for package in ("dask", "distributed"):
        try:
            setattr(found, package, metadata.version(package))
        except metadata.PackageNotFoundError:
            lacking.append(package)
    if lacking:
        found.missing = f"{' and '.join(lacking)} {'is' if len(lacking) == 1 else 'are'} not installed: {INSTALL_HINT}"
    return found


def require_installed() -> None:
    """A one-line ``DaskError`` when this machine cannot run Dask."""
    missing = local_versions().missing
    if missing:
        raise DaskError(missing)


def check_matching(members: Mapping[str, dpb.DaskVersions]) -> None:
    """Refuse, in one line naming the difference, when the members' versions differ (or one lacks Dask)."""
    for name, versions in members.items():
        if versions.missing:
            raise DaskError(f"{name} cannot run Dask: {versions.missing}")
    for field in ("dask", "distributed", "python"):
        seen: dict[str, list[str]] = {}
        for name, versions in members.items():
            seen.setdefault(getattr(versions, field), []).append(name)
        if len(seen) > 1:
            which = "; ".join(f"{', '.join(names)} {field} {version}" for version, names in sorted(seen.items()))
            raise DaskError(f"the members' {field} versions differ ({which}): install the same version on each")
