"""THE table of features: each one's node part, command-line parts and tray part, as lazy ``"module:attr"`` strings.

Adding a feature is one ``FeatureSpec`` here plus its package (``services/<name>/``, ``cli/<name>.py``, a tray part
in ``ui/``). Nothing is imported until asked for, so ``noizylab --help`` and plain commands stay fast and a feature's
heavy dependencies (PyAV, asyncssh, pyqtgraph...) load only when a node starts or the feature's own command runs.

- ``node``: a class built as ``cls(ctx: NodeContext)`` that satisfies ``core.feature.Feature``. The node starts the
  features in this table's order and stops them in reverse: metrics comes last, after the features whose figures it
  exports.
- ``cli``: functions ``register(sub)`` that add subcommands (each subparser sets ``handler=`` with
  ``set_defaults``), in the order ``noizylab --help`` lists them.
- ``tray``: a class built as ``cls(feature, ctx, bridge)`` (see ``ui/extensions.py``) that gets the running feature
  itself, typed, never the node.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from noizylab_desktop.core.feature import FeatureFactory

# ``register(sub)`` adds a feature's subcommands; each subparser sets ``handler=`` with ``set_defaults``.
Registrar = Callable[["argparse._SubParsersAction[Any]"], None]

PACKAGE = "noizylab_desktop"


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its name and where its parts are (``"module:attr"``, relative to the package)."""

    name: str
    node: str | None = None
    cli: tuple[str, ...] = ()
    tray: str | None = None


FEATURES = (
    FeatureSpec(
        "permissions",
        cli=("cli.permissions:register",),
    ),
    FeatureSpec(
        "tasks",
        node="services.tasks.feature:TasksFeature",
        cli=("cli.tasks:register", "cli.routing:register"),
        tray="ui.tasks_console:TasksTray",
    ),
    FeatureSpec(
        "dask",
        node="services.dask.feature:DaskFeature",
        cli=("cli.dask:register",),
        tray="ui.dask_tray:DaskTray",
    ),
    FeatureSpec(
        "winrm",
        cli=("cli.winrm:register",),
    ),
    FeatureSpec(
        "clipboard",
        node="services.clipboard.feature:ClipboardFeature",
        cli=("cli.clipboard:register",),
        tray="ui.clipboard_tray:ClipboardTray",
    ),
    FeatureSpec(
        "display",
        node="services.display.feature:DisplayFeature",
        cli=("cli.display:register",),
        tray="ui.display_tray:DisplayTray",
    ),
    FeatureSpec(
        "sync",
        node="services.sync.feature:SyncFeature",
        cli=("cli.sync:register",),
        tray="ui.sync_tray:SyncTray",
    ),
    FeatureSpec(
        "tunnel",
        node="services.tunnel.feature:TunnelFeature",
        cli=("cli.tunnel:register",),
        tray="ui.tunnel_tray:TunnelTray",
    ),
    FeatureSpec(
        "files",
        node="services.files.feature:FilesFeature",
        cli=("cli.files:register",),
        tray="ui.files_tray:FilesTray",
    ),
    FeatureSpec(
        "update",
        node="services.update.feature:UpdateFeature",
        cli=("cli.update:register",),
        tray="ui.update_tray:UpdateTray",
    ),
    FeatureSpec(
        "metrics",
        node="services.metrics.feature:MetricsFeature",
        cli=("cli.metrics:register",),
        tray="ui.metrics_dashboard:MetricsTray",
    ),
)


def load(ref: str) -> object:
    """The attribute a ``"module:attr"`` reference names (the module relative to the package), imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)


def feature_factories() -> list[FeatureFactory]:
    """Every feature the node builds, in start order (stopped in reverse)."""
    return [cast("FeatureFactory", load(spec.node)) for spec in FEATURES if spec.node is not None]


def cli_registrars() -> list[Registrar]:
    """Every feature's command-line registration, in the order ``noizylab --help`` lists them."""
    return [cast(Registrar, load(ref)) for spec in FEATURES for ref in spec.cli]


def tray_parts() -> list[tuple[str, str]]:
    """``(feature name, "module:attr")`` of every feature's tray part, in menu order."""
    return [(spec.name, spec.tray) for spec in FEATURES if spec.tray is not None]
