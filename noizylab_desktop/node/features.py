"""The features the node runs and the commands they add: one entry per feature in each table.

Each entry names a module and an attribute, imported only when asked for, so that ``noizylab --help`` and plain
commands stay fast and a feature's heavy dependencies (PyAV, asyncssh, pyqtgraph...) load only when a node starts or
the feature's own command runs.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from noizylab_desktop.core.feature import FeatureFactory

# ``register(sub)`` adds a feature's subcommands; each subparser sets ``handler=`` with ``set_defaults``.
Registrar = Callable[["argparse._SubParsersAction[Any]"], None]

# Start order; the node stops them in reverse. Metrics comes after the features whose figures it exports.
FEATURES = (
    ("noizylab_desktop.services.tasks.feature", "TasksFeature"),
    ("noizylab_desktop.services.clipboard.feature", "ClipboardFeature"),
    ("noizylab_desktop.services.display.feature", "DisplayFeature"),
    ("noizylab_desktop.services.sync.feature", "SyncFeature"),
    ("noizylab_desktop.services.metrics.feature", "MetricsFeature"),
)

COMMANDS = (
    ("noizylab_desktop.cli.permissions", "register"),
    ("noizylab_desktop.cli.tasks", "register"),
    ("noizylab_desktop.cli.routing", "register"),
    ("noizylab_desktop.cli.winrm", "register"),
    ("noizylab_desktop.cli.sync", "register"),
    ("noizylab_desktop.cli.clipboard", "register"),
    ("noizylab_desktop.cli.display", "register"),
    ("noizylab_desktop.cli.metrics", "register"),
)


def _load(module: str, name: str) -> object:
    return getattr(importlib.import_module(module), name)


def feature_factories() -> list[FeatureFactory]:
    """Every feature the node builds, in start order (stopped in reverse)."""
    return [cast("FeatureFactory", _load(module, name)) for module, name in FEATURES]


def cli_registrars() -> list[Registrar]:
    """Every feature's command-line registration, in the order ``noizylab --help`` lists them."""
    return [cast(Registrar, _load(module, name)) for module, name in COMMANDS]
